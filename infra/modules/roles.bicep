// Data-plane rights for one principal, each on the narrowest scope Azure
// accepts: blob data access on the key ring CONTAINER (not the account), and
// wrap/unwrap on the KEY (not the vault). Called once per identity.

@description('Object id of the principal (a slot identity, or an operator).')
param principalId string

@description('Type of the principal.')
@allowed([
  'ServicePrincipal'
  'User'
  'Group'
])
param principalType string = 'ServicePrincipal'

@description('Storage account that holds the key ring.')
param storageAccountName string

@description('Key ring container.')
param containerName string

@description('Key Vault that holds the key-encryption key.')
param keyVaultName string

@description('Key-encryption key.')
param keyName string

// Built-in role definition ids (the same in every tenant).
// Storage Blob Data Contributor: read, write and delete blobs.
var storageBlobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
// Key Vault Crypto Service Encryption User: keys/read, keys/wrap/action, keys/unwrap/action.
var keyVaultCryptoServiceEncryptionUserRoleId = 'e147488a-f6f5-4113-8e2d-b22465e65bf6'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: containerName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource key 'Microsoft.KeyVault/vaults/keys@2023-07-01' existing = {
  parent: vault
  name: keyName
}

resource blobDataOnContainer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(container.id, principalId, storageBlobDataContributorRoleId)
  scope: container
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributorRoleId)
    principalId: principalId
    principalType: principalType
  }
}

resource cryptoOnKey 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(key.id, principalId, keyVaultCryptoServiceEncryptionUserRoleId)
  scope: key
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultCryptoServiceEncryptionUserRoleId)
    principalId: principalId
    principalType: principalType
  }
}
