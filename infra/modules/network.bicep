// Virtual network for App Service regional VNet integration. The integration
// subnet has service endpoints for Storage and Key Vault, so the storage
// account and the vault can deny all other networks (firewall default Deny)
// without private endpoints or private DNS zones.

@description('Azure region.')
param location string

@description('Name of the virtual network.')
param vnetName string

@description('Name of the network security group of the integration subnet.')
param nsgName string

@description('Address space of the virtual network.')
param addressPrefix string = '10.20.0.0/16'

@description('Integration subnet (delegated to Microsoft.Web/serverFarms; /26 or larger is recommended).')
param integrationSubnetPrefix string = '10.20.1.0/26'

@description('Tags for every resource.')
param tags object = {}

var integrationSubnetName = 'app-integration'

resource nsg 'Microsoft.Network/networkSecurityGroups@2023-11-01' = {
  name: nsgName
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2023-11-01' = {
  name: vnetName
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: integrationSubnetName
        properties: {
          addressPrefix: integrationSubnetPrefix
          networkSecurityGroup: {
            id: nsg.id
          }
          delegations: [
            {
              name: 'app-service'
              properties: {
                serviceName: 'Microsoft.Web/serverFarms'
              }
            }
          ]
          serviceEndpoints: [
            {
              service: 'Microsoft.Storage'
            }
            {
              service: 'Microsoft.KeyVault'
            }
          ]
        }
      }
    ]
  }
}

@description('Resource id of the integration subnet.')
output integrationSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, integrationSubnetName)
