// Linux App Service plan, the web app and its `staging` slot. Both get a
// system-assigned identity and the SAME Data Protection settings, none of them
// slot-sticky: whichever slot code runs in, it reads and writes one key ring
// under one application name, so a swap logs nobody out.

@description('Azure region.')
param location string

@description('App Service plan name.')
param planName string

@description('Web app name (globally unique host name).')
param webAppName string

@description('Name of the deployment slot used for staging.')
param stagingSlotName string = 'staging'

@description('Plan SKU. Deployment slots need Standard, Premium or higher; PremiumV3 is the default.')
param planSku string = 'P0v3'

@description('Instances of the plan (and workers of each app). Two or more exercise the multi-writer key ring.')
@minValue(1)
param instanceCount int = 2

@description('Zone redundancy of the plan (needs a PremiumV3 SKU and a region with availability zones).')
param zoneRedundant bool = false

@description('Runtime stack, for example PYTHON|3.12 (a Debian 12 image that runs the Rust sample binary) or DOTNETCORE|8.0 for an ASP.NET Core app.')
param linuxFxVersion string = 'PYTHON|3.12'

@description('Startup command (for example ./my-rust-service). Empty: the stack default.')
param appCommandLine string = '/home/site/wwwroot/app-service-slots'

@description('Path App Service probes on every instance.')
param healthCheckPath string = '/healthz'

@description('Resource id of the VNet integration subnet (delegated to Microsoft.Web/serverFarms).')
param integrationSubnetId string

@description('DATAPROTECTION_BLOB_URL: HTTPS URL of the key ring blob, no SAS.')
param dataProtectionBlobUrl string

@description('DATAPROTECTION_KEYVAULT_KEY_ID: versionless Key Vault key URL.')
param dataProtectionKeyVaultKeyId string

@description('DATAPROTECTION_APP_NAME: the one application name shared by every slot (SetApplicationName).')
param dataProtectionAppName string

@description('Tags for the plan and both slots.')
param tags object = {}

@description('Extra tags for the production site only (for example azd-service-name).')
param webAppTags object = {}

// One list for both slots: the production site and the staging slot are
// built from the same variables, and slotConfigNames below marks none of
// these settings as sticky.
var dataProtectionSettings = [
  {
    name: 'DATAPROTECTION_BLOB_URL'
    value: dataProtectionBlobUrl
  }
  {
    name: 'DATAPROTECTION_KEYVAULT_KEY_ID'
    value: dataProtectionKeyVaultKeyId
  }
  {
    name: 'DATAPROTECTION_APP_NAME'
    value: dataProtectionAppName
  }
]

resource plan 'Microsoft.Web/serverfarms@2023-12-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'linux'
  sku: {
    name: planSku
    capacity: instanceCount
  }
  properties: {
    // checkov:skip=CKV_AZURE_225: zone redundancy depends on the region and SKU; it is the zoneRedundant parameter
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource web 'Microsoft.Web/sites@2023-12-01' = {
  name: webAppName
  location: location
  tags: union(tags, webAppTags)
  kind: 'app,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    // checkov:skip=CKV_AZURE_222: a public web site; inbound access restrictions are the application's choice
    // checkov:skip=CKV_AZURE_17: browsers do not present client certificates; sign-in is the application's (cookies protected with the shared key ring)
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false
    virtualNetworkSubnetId: integrationSubnetId
    siteConfig: {
      linuxFxVersion: linuxFxVersion
      appCommandLine: appCommandLine
      alwaysOn: true
      http20Enabled: true
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      remoteDebuggingEnabled: false
      healthCheckPath: healthCheckPath
      numberOfWorkers: instanceCount
      detailedErrorLoggingEnabled: true
      httpLoggingEnabled: true
      requestTracingEnabled: true
      vnetRouteAllEnabled: true
      appSettings: dataProtectionSettings
    }
  }
}

resource staging 'Microsoft.Web/sites/slots@2023-12-01' = {
  parent: web
  name: stagingSlotName
  location: location
  tags: tags
  kind: 'app,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    // checkov:skip=CKV_AZURE_222: a public web site; inbound access restrictions are the application's choice
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false
    virtualNetworkSubnetId: integrationSubnetId
    siteConfig: {
      linuxFxVersion: linuxFxVersion
      appCommandLine: appCommandLine
      alwaysOn: true
      http20Enabled: true
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      remoteDebuggingEnabled: false
      healthCheckPath: healthCheckPath
      numberOfWorkers: instanceCount
      detailedErrorLoggingEnabled: true
      httpLoggingEnabled: true
      requestTracingEnabled: true
      vnetRouteAllEnabled: true
      appSettings: dataProtectionSettings
    }
  }
}

// Sticky (slot-bound) settings: deliberately none. Declaring the list empty
// also removes any sticky mark added by hand, which would make a swap carry a
// different key ring or application name into production (field lesson P1).
resource slotConfigNames 'Microsoft.Web/sites/config@2023-12-01' = {
  parent: web
  // checkov:skip=CKV_AZURE_13: false positive: sites/config 'slotConfigNames' is not the 'web' config this check is about (the site and slot pass it)
  // checkov:skip=CKV_AZURE_63: false positive: sites/config 'slotConfigNames' is not the 'web' config this check is about (the site and slot pass it)
  // checkov:skip=CKV_AZURE_65: false positive: sites/config 'slotConfigNames' is not the 'web' config this check is about (the site and slot pass it)
  // checkov:skip=CKV_AZURE_66: false positive: sites/config 'slotConfigNames' is not the 'web' config this check is about (the site and slot pass it)
  name: 'slotConfigNames'
  properties: {
    // checkov:skip=CKV_AZURE_80: false positive: sites/config 'slotConfigNames' is not the 'web' config this check is about (the site and slot pass it)
    // checkov:skip=CKV_AZURE_88: false positive: sites/config 'slotConfigNames' is not the 'web' config this check is about (the site and slot pass it)
    // checkov:skip=CKV_AZURE_222: false positive: sites/config 'slotConfigNames' is not the 'web' config this check is about (the site and slot pass it)
    appSettingNames: []
    connectionStringNames: []
    azureStorageConfigNames: []
  }
}

// No basic-auth (FTP / Kudu user+password) publishing; deploy with Entra ID.
resource webFtp 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: web
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource webScm 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: web
  name: 'scm'
  properties: {
    allow: false
  }
}

resource stagingFtp 'Microsoft.Web/sites/slots/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: staging
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource stagingScm 'Microsoft.Web/sites/slots/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: staging
  name: 'scm'
  properties: {
    allow: false
  }
}

@description('Web app name.')
output webAppName string = web.name

@description('Staging slot name.')
output stagingSlotName string = staging.name

@description('Default host name of the production slot.')
output webAppHostName string = web.properties.defaultHostName

@description('Default host name of the staging slot.')
output stagingHostName string = staging.properties.defaultHostName

@description('Object id of the production slot identity.')
output webPrincipalId string = web.identity.principalId

@description('Object id of the staging slot identity.')
output stagingPrincipalId string = staging.identity.principalId
