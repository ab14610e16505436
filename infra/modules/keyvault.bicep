// Key Vault holding the key-encryption key that wraps the Data Protection
// master keys. Azure RBAC only (no access policies), soft delete and purge
// protection on, firewall default Deny. The RSA key can do nothing but
// wrapKey and unwrapKey.

@description('Azure region.')
param location string

@description('Key Vault name (3-24 characters, globally unique; reserved while soft-deleted).')
@minLength(3)
@maxLength(24)
param keyVaultName string

@description('Name of the key-encryption key.')
param keyName string = 'dataprotection-kek'

@description('RSA modulus size of the key-encryption key.')
@allowed([
  2048
  3072
])
param keySize int = 3072

@description('Days a deleted vault or key can be recovered (purge protection makes this binding).')
@minValue(7)
@maxValue(90)
param softDeleteRetentionDays int = 90

@description('Create a new key version this long after the current one was created (ISO 8601 duration).')
param keyRotationAfter string = 'P1Y'

@description('Expiry set on each new key version (ISO 8601 duration). Must be longer than keyRotationAfter.')
param keyExpiryTime string = 'P2Y'

@description('Resource id of the App Service integration subnet allowed through the firewall.')
param allowedSubnetId string

@description('Public IPv4 addresses or CIDR ranges of operators (for dpkeys from a workstation). Empty: none.')
param operatorIpRanges array = []

@description('Tags for every resource.')
param tags object = {}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: keyVaultName
  location: location
  tags: tags
  properties: {
    // checkov:skip=CKV_AZURE_189: public endpoint kept but firewall default is Deny (VNet rule for the app subnet + operator IPs); private endpoints are out of scope
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'premium'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Deny'
      bypass: 'AzureServices'
      virtualNetworkRules: [
        {
          id: allowedSubnetId
          ignoreMissingVnetServiceEndpoint: false
        }
      ]
      ipRules: [for ip in operatorIpRanges: {
        value: ip
      }]
    }
  }
}

resource key 'Microsoft.KeyVault/vaults/keys@2023-07-01' = {
  parent: vault
  name: keyName
  properties: {
    kty: 'RSA-HSM'
    keySize: keySize
    keyOps: [
      'wrapKey'
      'unwrapKey'
    ]
    attributes: {
      enabled: true
    }
    rotationPolicy: {
      attributes: {
        expiryTime: keyExpiryTime
      }
      lifetimeActions: [
        {
          trigger: {
            timeAfterCreate: keyRotationAfter
          }
          action: {
            type: 'rotate'
          }
        }
        {
          trigger: {
            timeBeforeExpiry: 'P30D'
          }
          action: {
            type: 'notify'
          }
        }
      ]
    }
  }
}

@description('Key Vault name.')
output keyVaultName string = vault.name

@description('Key name.')
output keyName string = key.name

@description('Resource id of the key (the scope of the crypto role assignments).')
output keyResourceId string = key.id

@description('Versionless key URL: wrap with the current version, unwrap with the version stored in each key element.')
output keyUri string = key.properties.keyUri

@description('Key URL of the version current at deployment time.')
output keyUriWithVersion string = key.properties.keyUriWithVersion
