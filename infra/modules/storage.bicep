// Storage account holding the Data Protection key ring: one private container,
// one blob (default keys.xml). Entra ID (RBAC) is the only way in: shared keys
// (and therefore account SAS and service SAS) are disabled and anonymous blob
// access is off. Soft delete and versioning keep every earlier copy of the
// ring, so an overwrite or a delete can be undone.

@description('Azure region.')
param location string

@description('Storage account name (3-24 lowercase letters and digits, globally unique).')
@minLength(3)
@maxLength(24)
param storageAccountName string

@description('Private container that holds the key ring blob.')
param containerName string = 'dataprotection'

@description('Name of the key ring blob inside the container.')
param blobName string = 'keys.xml'

@description('Replication. Geo-redundant by default so a regional outage cannot lose the ring.')
@allowed([
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_GRS'

@description('Days that deleted blobs, blob versions and containers can be restored.')
@minValue(7)
@maxValue(365)
param softDeleteRetentionDays int = 30

@description('Resource id of the App Service integration subnet allowed through the firewall.')
param allowedSubnetId string

@description('Public IPv4 addresses or CIDR ranges of operators (for dpkeys from a workstation). Empty: none.')
param operatorIpRanges array = []

@description('Tags for every resource.')
param tags object = {}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    // checkov:skip=CKV_AZURE_59: public endpoint kept but firewall default is Deny (VNet rule for the app subnet + operator IPs); private endpoints are out of scope
    // checkov:skip=CKV_AZURE_43: false positive, the name is a module parameter checkov cannot resolve; main.bicep passes 'stdp' + uniqueString() (17 lowercase alphanumerics; tested)
    accessTier: 'Hot'
    supportsHttpsTrafficOnly: true
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Deny'
      bypass: 'AzureServices'
      virtualNetworkRules: [
        {
          id: allowedSubnetId
          action: 'Allow'
        }
      ]
      ipRules: [for ip in operatorIpRanges: {
        value: ip
        action: 'Allow'
      }]
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    isVersioningEnabled: true
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteRetentionDays
      allowPermanentDelete: false
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteRetentionDays
    }
  }
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}

@description('Storage account name.')
output storageAccountName string = storage.name

@description('Resource id of the key ring container (the scope of the blob role assignments).')
output containerId string = container.id

@description('Container name.')
output containerName string = container.name

@description('HTTPS URL of the key ring blob, without any SAS.')
output blobUrl string = '${storage.properties.primaryEndpoints.blob}${containerName}/${blobName}'
