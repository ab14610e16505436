// dataprotection-rs on Azure App Service with deployment slots.
//
// One key ring for every slot: a private blob (storage account with soft
// delete and versioning) whose keys are wrapped by an RSA key in Key Vault.
// The production site and its `staging` slot each have a system-assigned
// identity with data rights on exactly that container and that key, and the
// same, non-sticky DATAPROTECTION_* settings, so a swap keeps users signed in.
//
// Scope: resource group (az deployment group create, or azd with a
// resource-group-scoped environment). See README.md.

targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('Environment name (azd sets it); used in resource names and the azd-env-name tag.')
param environmentName string

@description('Azure region of every resource.')
param location string = resourceGroup().location

@minLength(1)
@description('DATAPROTECTION_APP_NAME: the one application name both slots use (like SetApplicationName). Never derived from a slot, host or path.')
param dataProtectionAppName string

@description('Private container for the key ring.')
param containerName string = 'dataprotection'

@description('Key ring blob name.')
param blobName string = 'keys.xml'

@description('Name of the Key Vault key that wraps the master keys.')
param keyName string = 'dataprotection-kek'

@allowed([
  2048
  3072
])
@description('RSA modulus size of the key-encryption key.')
param keySize int = 3072

@description('App Service plan SKU (slots need Standard or higher).')
param appServicePlanSku string = 'P0v3'

@minValue(1)
@description('Instances of the plan.')
param instanceCount int = 2

@description('Zone-redundant App Service plan (needs a region with availability zones).')
param zoneRedundant bool = false

@description('Runtime stack of both slots. The sample (samples/app-service-slots) is a native Linux binary, so any glibc-based stack runs it; PYTHON|3.12 is Debian 12 with OpenSSL 3, which the binary links.')
param linuxFxVersion string = 'PYTHON|3.12'

@description('Startup command of both slots: the Rust binary azd deploys (see samples/app-service-slots/azd-package.sh).')
param appCommandLine string = '/home/site/wwwroot/app-service-slots'

@description('Health check path of both slots (the sample answers ok on /healthz).')
param healthCheckPath string = '/healthz'

@description('Object id of an operator (user or group) who gets the same two roles as the slots, for dpkeys. Empty: nobody.')
param operatorPrincipalId string = ''

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
@description('Type of operatorPrincipalId.')
param operatorPrincipalType string = 'User'

@description('Public IPv4 addresses or CIDR ranges allowed through the storage and Key Vault firewalls (an operator workstation running dpkeys). Empty: only the app subnet.')
param operatorIpRanges array = []

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
}
var stagingSlotName = 'staging'

module network 'modules/network.bicep' = {
  name: 'dp-network'
  params: {
    location: location
    vnetName: 'vnet-dp-${resourceToken}'
    nsgName: 'nsg-dp-${resourceToken}'
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'dp-storage'
  params: {
    location: location
    storageAccountName: 'stdp${resourceToken}'
    containerName: containerName
    blobName: blobName
    allowedSubnetId: network.outputs.integrationSubnetId
    operatorIpRanges: operatorIpRanges
    tags: tags
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'dp-keyvault'
  params: {
    location: location
    keyVaultName: 'kv-dp-${resourceToken}'
    keyName: keyName
    keySize: keySize
    allowedSubnetId: network.outputs.integrationSubnetId
    operatorIpRanges: operatorIpRanges
    tags: tags
  }
}

module app 'modules/appservice.bicep' = {
  name: 'dp-appservice'
  params: {
    location: location
    planName: 'plan-dp-${resourceToken}'
    webAppName: 'app-dp-${resourceToken}'
    stagingSlotName: stagingSlotName
    planSku: appServicePlanSku
    instanceCount: instanceCount
    zoneRedundant: zoneRedundant
    linuxFxVersion: linuxFxVersion
    appCommandLine: appCommandLine
    healthCheckPath: healthCheckPath
    integrationSubnetId: network.outputs.integrationSubnetId
    dataProtectionBlobUrl: storage.outputs.blobUrl
    dataProtectionKeyVaultKeyId: keyVault.outputs.keyUri
    dataProtectionAppName: dataProtectionAppName
    tags: tags
    webAppTags: {
      'azd-service-name': 'web'
    }
  }
}

// The production slot's identity.
module rolesProduction 'modules/roles.bicep' = {
  name: 'dp-roles-production'
  params: {
    principalId: app.outputs.webPrincipalId
    principalType: 'ServicePrincipal'
    storageAccountName: storage.outputs.storageAccountName
    containerName: storage.outputs.containerName
    keyVaultName: keyVault.outputs.keyVaultName
    keyName: keyVault.outputs.keyName
  }
}

// The staging slot's identity: the same rights on the same ring.
module rolesStaging 'modules/roles.bicep' = {
  name: 'dp-roles-staging'
  params: {
    principalId: app.outputs.stagingPrincipalId
    principalType: 'ServicePrincipal'
    storageAccountName: storage.outputs.storageAccountName
    containerName: storage.outputs.containerName
    keyVaultName: keyVault.outputs.keyVaultName
    keyName: keyVault.outputs.keyName
  }
}

// Optional: an operator (azd passes the signed-in user) for dpkeys.
module rolesOperator 'modules/roles.bicep' = if (!empty(operatorPrincipalId)) {
  name: 'dp-roles-operator'
  params: {
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
    storageAccountName: storage.outputs.storageAccountName
    containerName: storage.outputs.containerName
    keyVaultName: keyVault.outputs.keyVaultName
    keyName: keyVault.outputs.keyName
  }
}

// Named exactly like the app settings, so `azd env get-values` (or the
// deployment outputs) can be exported and handed to dpkeys as they are.
output DATAPROTECTION_BLOB_URL string = storage.outputs.blobUrl
output DATAPROTECTION_KEYVAULT_KEY_ID string = keyVault.outputs.keyUri
output DATAPROTECTION_APP_NAME string = dataProtectionAppName

output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output WEB_APP_NAME string = app.outputs.webAppName
output WEB_APP_HOST_NAME string = app.outputs.webAppHostName
output STAGING_SLOT_NAME string = app.outputs.stagingSlotName
output STAGING_HOST_NAME string = app.outputs.stagingHostName
output STORAGE_ACCOUNT_NAME string = storage.outputs.storageAccountName
output KEY_VAULT_NAME string = keyVault.outputs.keyVaultName
output KEY_VAULT_KEY_VERSION_AT_DEPLOY string = keyVault.outputs.keyUriWithVersion
