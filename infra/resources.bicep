// The Portal on Azure Container Apps: the resource group's contents. main.bicep creates the group.

param location string
param tags object
@minLength(13)
@maxLength(13)
@description('uniqueString of subscription, environment and region: keeps global names unique.')
param resourceToken string
param principalId string

@secure()
param postgresAdminPassword string
@secure()
param routerToken string
@secure()
param authSigningKey string
@secure()
param adminPassword string
@secure()
param relayKey string
param adminEmail string

param postgresAdminLogin string
param apiImage string
param webImage string
param routerImage string
param apiMinReplicas int
param apiMaxReplicas int
param webMinReplicas int
param webMaxReplicas int
param routers array

// ---------------------------------------------------------------- monitoring
resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${resourceToken}'
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${resourceToken}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
  }
}

// ---------------------------------------------------------------- identity, registry, secrets
resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${resourceToken}'
  location: location
  tags: tags
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: 'cr${resourceToken}'
  location: location
  tags: tags
  sku: { name: 'Basic' }
  properties: { adminUserEnabled: false }
}

var acrPullRole = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '7f951dda-4ed3-4ba3-af9a-0e4b8c0be0d8')
var keyVaultSecretsUserRole = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '4633458b-17de-408a-b874-0445c86b69e6')
var keyVaultSecretsOfficerRole = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7')

resource identityPullsImages 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, identity.id, acrPullRole)
  scope: registry
  properties: {
    roleDefinitionId: acrPullRole
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kv-${resourceToken}'
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    enablePurgeProtection: true
  }
}

resource identityReadsSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identity.id, keyVaultSecretsUserRole)
  scope: vault
  properties: {
    roleDefinitionId: keyVaultSecretsUserRole
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The operator who ran azd may rotate secrets (docs/deploy.md).
resource operatorManagesSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(principalId)) {
  name: guid(vault.id, principalId, keyVaultSecretsOfficerRole)
  scope: vault
  properties: {
    roleDefinitionId: keyVaultSecretsOfficerRole
    principalId: principalId
  }
}

// ---------------------------------------------------------------- Postgres (the Supabase role)
resource postgres 'Microsoft.DBforPostgreSQL/flexibleServers@2024-08-01' = {
  name: 'psql-${resourceToken}'
  location: location
  tags: tags
  sku: {
    name: 'Standard_B1ms'
    tier: 'Burstable'
  }
  properties: {
    version: '16'
    administratorLogin: postgresAdminLogin
    administratorLoginPassword: postgresAdminPassword
    storage: { storageSizeGB: 32, autoGrow: 'Enabled' }
    backup: { backupRetentionDays: 7, geoRedundantBackup: 'Disabled' }
    highAvailability: { mode: 'Disabled' }
    network: { publicNetworkAccess: 'Enabled' }
  }

  resource portal 'databases' = {
    name: 'portal'
  }

  // 0.0.0.0 admits Azure services only (the Container Apps environment), not the internet.
  resource azureServices 'firewallRules' = {
    name: 'allow-azure-services'
    properties: { startIpAddress: '0.0.0.0', endIpAddress: '0.0.0.0' }
  }
}

// ---------------------------------------------------------------- Redis
// Runtime counters, key snapshots and the usage stream live here, so the cache must survive a
// restart: append-only-file persistence exists only on the Premium tier of Azure Cache for Redis,
// and it writes to a storage account of ours.
resource redisAof 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'st${resourceToken}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    supportsHttpsTrafficOnly: true
  }
}

resource redis 'Microsoft.Cache/redis@2024-11-01' = {
  name: 'redis-${resourceToken}'
  location: location
  tags: tags
  properties: {
    sku: { name: 'Premium', family: 'P', capacity: 1 }
    enableNonSslPort: false
    minimumTlsVersion: '1.2'
    redisVersion: '6'
    redisConfiguration: {
      'aof-backup-enabled': 'true'
      'aof-storage-connection-string-0': 'DefaultEndpointsProtocol=https;AccountName=${redisAof.name};AccountKey=${redisAof.listKeys().keys[0].value};EndpointSuffix=${environment().suffixes.storage}'
      'maxmemory-policy': 'noeviction'
    }
  }
}

// ---------------------------------------------------------------- every secret, in Key Vault
resource databaseConnectionSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'database-connection-string'
  properties: {
    value: 'Host=${postgres.properties.fullyQualifiedDomainName};Port=5432;Username=${postgresAdminLogin};Password=${postgresAdminPassword};Database=portal;SSL Mode=Require'
  }
}

resource redisConnectionSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'redis-connection-string'
  properties: {
    value: '${redis.properties.hostName}:${redis.properties.sslPort},password=${redis.listKeys().primaryKey},ssl=True,abortConnect=False'
  }
}

resource routerTokenSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'router-token'
  properties: { value: routerToken }
}

resource signingKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'auth-signing-key'
  properties: { value: authSigningKey }
}

resource adminPasswordSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'admin-password'
  properties: { value: adminPassword }
}

resource relayKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'relay-key'
  properties: { value: relayKey }
}

// ---------------------------------------------------------------- Container Apps environment
resource containerAppsEnvironment 'Microsoft.App/managedEnvironments@2024-10-02-preview' = {
  name: 'cae-${resourceToken}'
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logs.properties.customerId
        sharedKey: logs.listKeys().primarySharedKey
      }
    }
    // The managed OpenTelemetry agent: every app gets OTEL_EXPORTER_OTLP_ENDPOINT, and the
    // service defaults export traces and logs to it, which forwards them to Application Insights.
    appInsightsConfiguration: {
      connectionString: insights.properties.ConnectionString
    }
    openTelemetryConfiguration: {
      tracesConfiguration: { destinations: [ 'appInsights' ] }
      logsConfiguration: { destinations: [ 'appInsights' ] }
    }
    workloadProfiles: [
      { name: 'Consumption', workloadProfileType: 'Consumption' }
    ]
  }
}

var serviceProbes = [
  {
    type: 'Startup'
    httpGet: { path: '/alive', port: 8080 }
    initialDelaySeconds: 3
    periodSeconds: 3
    failureThreshold: 20
  }
  {
    type: 'Liveness'
    httpGet: { path: '/alive', port: 8080 }
    periodSeconds: 10
    failureThreshold: 3
  }
  {
    type: 'Readiness'
    httpGet: { path: '/health', port: 8080 }
    periodSeconds: 5
    // A dependency's check gives up after 2 s (ServiceDefaults' DependencyCheckTimeout): the default 1 s would fail the
    // probe, and pull every replica, while Redis or Postgres hangs.
    timeoutSeconds: 4
    failureThreshold: 3
  }
]

var common = {
  location: location
  tags: tags
  environmentId: containerAppsEnvironment.id
  identityId: identity.id
  registryServer: registry.properties.loginServer
  keyVaultUri: vault.properties.vaultUri
}

// ---------------------------------------------------------------- router pools (internal)
module routerApps 'app/container-app.bicep' = [for (router, index) in routers: {
  name: 'app-${router.name}'
  dependsOn: [ identityPullsImages, identityReadsSecrets, databaseConnectionSecret, redisConnectionSecret, routerTokenSecret, signingKeySecret, adminPasswordSecret, relayKeySecret ]
  params: {
    name: router.name
    serviceName: router.name
    location: common.location
    tags: common.tags
    environmentId: common.environmentId
    identityId: common.identityId
    registryServer: common.registryServer
    keyVaultUri: common.keyVaultUri
    image: routerImage
    external: false
    minReplicas: 1
    maxReplicas: 1
    probes: serviceProbes
    keyVaultSecrets: [ { name: 'router-token', secretName: 'router-token' } ]
    env: concat([
      { name: 'Router__Name', value: router.name }
      { name: 'Router__Model', value: router.model }
      { name: 'Router__Seed', value: string(router.seed) }
      { name: 'Router__ApiKey', secretRef: 'router-token' }
    ], map(range(0, length(router.sessions)), s => { name: 'Router__Sessions__${s}', value: string(router.sessions[s]) }))
  }
}]

// ---------------------------------------------------------------- Api
var dataSecrets = [
  { name: 'database-connection-string', secretName: 'database-connection-string' }
  { name: 'redis-connection-string', secretName: 'redis-connection-string' }
  { name: 'auth-signing-key', secretName: 'auth-signing-key' }
  { name: 'router-token', secretName: 'router-token' }
]
var dataEnv = [
  { name: 'ConnectionStrings__portaldb', secretRef: 'database-connection-string' }
  { name: 'ConnectionStrings__redis', secretRef: 'redis-connection-string' }
  { name: 'Auth__SigningKey', secretRef: 'auth-signing-key' }
  { name: 'Routers__Token', secretRef: 'router-token' }
  { name: 'OTEL_SERVICE_NAME', value: 'api' }
]

// Every request reaches the Api and the Web through the environment's ingress, which appends the address it was called
// from to X-Forwarded-For: that entry is the client. The Web's sign-in calls to the Api go through the ingress too and
// name the browser they act for, believed with the relay key (docs/operations.md, "Client addresses").
var clientAddressEnv = [
  { name: 'ClientAddress__ProxyHops', value: '1' }
  { name: 'ClientAddress__RelayKey', secretRef: 'relay-key' }
]

module api 'app/container-app.bicep' = {
  name: 'app-api'
  dependsOn: [ identityPullsImages, identityReadsSecrets, databaseConnectionSecret, redisConnectionSecret, routerTokenSecret, signingKeySecret, adminPasswordSecret, relayKeySecret ]
  params: {
    name: 'api'
    serviceName: 'api'
    location: common.location
    tags: common.tags
    environmentId: common.environmentId
    identityId: common.identityId
    registryServer: common.registryServer
    keyVaultUri: common.keyVaultUri
    image: apiImage
    external: true
    minReplicas: apiMinReplicas
    maxReplicas: apiMaxReplicas
    concurrentRequests: 100
    probes: serviceProbes
    keyVaultSecrets: concat(dataSecrets, [ { name: 'relay-key', secretName: 'relay-key' } ])
    env: concat(dataEnv, clientAddressEnv)
  }
}

// Schema migrations and the first operator account: started by the azd postdeploy hook of the Api
// (infra/scripts/migrate.sh) with the image azd just deployed.
resource migrations 'Microsoft.App/jobs@2025-01-01' = {
  name: 'migrations'
  location: location
  tags: tags
  dependsOn: [ identityPullsImages, identityReadsSecrets, databaseConnectionSecret, redisConnectionSecret, routerTokenSecret, signingKeySecret, adminPasswordSecret, relayKeySecret ]
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    environmentId: containerAppsEnvironment.id
    configuration: {
      triggerType: 'Manual'
      replicaTimeout: 600
      replicaRetryLimit: 1
      manualTriggerConfig: { parallelism: 1, replicaCompletionCount: 1 }
      registries: [ { server: registry.properties.loginServer, identity: identity.id } ]
      secrets: [for s in concat(dataSecrets, [ { name: 'admin-password', secretName: 'admin-password' } ]): {
        name: s.name
        keyVaultUrl: '${vault.properties.vaultUri}secrets/${s.secretName}'
        identity: identity.id
      }]
    }
    template: {
      containers: [
        {
          name: 'migrations'
          image: empty(apiImage) ? 'mcr.microsoft.com/azuredocs/containerapps-helloworld:latest' : apiImage
          args: empty(apiImage) ? [] : [ 'migrate' ]
          env: concat(dataEnv, [
            { name: 'Admin__Email', value: adminEmail }
            { name: 'Admin__Password', secretRef: 'admin-password' }
          ])
          resources: { cpu: json('0.5'), memory: '1Gi' }
        }
      ]
    }
  }
}

// ---------------------------------------------------------------- Web
module web 'app/container-app.bicep' = {
  name: 'app-web'
  dependsOn: [ identityPullsImages, identityReadsSecrets, databaseConnectionSecret, redisConnectionSecret, routerTokenSecret, signingKeySecret, adminPasswordSecret, relayKeySecret ]
  params: {
    name: 'web'
    serviceName: 'web'
    location: common.location
    tags: common.tags
    environmentId: common.environmentId
    identityId: common.identityId
    registryServer: common.registryServer
    keyVaultUri: common.keyVaultUri
    image: webImage
    external: true
    minReplicas: webMinReplicas
    maxReplicas: webMaxReplicas
    stickySessions: true
    probes: serviceProbes
    keyVaultSecrets: [
      { name: 'redis-connection-string', secretName: 'redis-connection-string' }
      { name: 'relay-key', secretName: 'relay-key' }
    ]
    env: concat(clientAddressEnv, [
      { name: 'ConnectionStrings__redis', secretRef: 'redis-connection-string' }
      { name: 'PortalApi__BaseAddress', value: 'https://${api.outputs.fqdn}' }
      { name: 'PortalApi__PublicUrl', value: 'https://${api.outputs.fqdn}' }
      { name: 'OTEL_SERVICE_NAME', value: 'web' }
    ])
  }
}

output registryEndpoint string = registry.properties.loginServer
output keyVaultName string = vault.name
output apiUrl string = 'https://${api.outputs.fqdn}'
output webUrl string = 'https://${web.outputs.fqdn}'
output applicationInsightsName string = insights.name
