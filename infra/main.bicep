// Cortensor Portal on Azure Container Apps. `azd up` provisions this (azure.yaml), then builds and
// deploys the Api, the Web and the router pools. Walk-through: docs/deploy.md.
targetScope = 'subscription'

@minLength(1)
@maxLength(40)
@description('azd environment name; names the resource group and seeds resource names.')
param environmentName string

@minLength(1)
@description('Azure region for every resource.')
param location string

@description('Object id of the operator running azd; granted Key Vault Secrets Officer to rotate secrets.')
param principalId string = ''

// Every secret is a parameter without a value: azd asks for it once and keeps it in the
// environment's config; the template writes it to Key Vault, and the apps read it from there.
@secure()
@description('Administrator password of the PostgreSQL flexible server.')
param postgresAdminPassword string
@secure()
@description('Token the Api presents to routers (AppHost parameter router-token).')
param routerToken string
@secure()
@description('HMAC key, at least 32 bytes, every Api replica signs access tokens with (AppHost parameter auth-signing-key).')
param authSigningKey string
@secure()
@description('Password of the first operator account (AppHost parameter admin-password).')
param adminPassword string
@secure()
@description('Key, at least 32 bytes, the Web presents on the sign-in calls it relays so the Api counts the browser, not the Web (AppHost parameter relay-key).')
param relayKey string

@description('E-mail of the first operator account (AppHost parameter admin-email).')
param adminEmail string

param postgresAdminLogin string = 'portaladmin'

@description('Images azd built; empty until the first deploy (main.parameters.json maps them).')
param apiImage string = ''
param webImage string = ''
param routerImage string = ''

@minValue(2)
@description('The Api never runs as a single replica: limits, snapshots and usage are shared through Redis.')
param apiMinReplicas int = 2
param apiMaxReplicas int = 10
@minValue(1)
param webMinReplicas int = 2
param webMaxReplicas int = 4

@description('The router pools of the launch topology (src/Cortensor.ServiceDefaults/LaunchTopology.cs), as internal apps.')
param routers array = [
  { name: 'router-oss20b-1', model: 'gpt-oss-20b', seed: 0, sessions: [ 2001, 2002 ] }
  { name: 'router-oss20b-2', model: 'gpt-oss-20b', seed: 1, sessions: [ 2003, 2004 ] }
  { name: 'router-oss20b-3', model: 'gpt-oss-20b', seed: 2, sessions: [ 2005, 2006 ] }
  { name: 'router-oss120b-1', model: 'gpt-oss-120b', seed: 0, sessions: [ 3001, 3002 ] }
  { name: 'router-gemma4-1', model: 'gemma-4-26b', seed: 0, sessions: [ 4001, 4002 ] }
  { name: 'router-qwen-1', model: 'qwen-3-32b', seed: 0, sessions: [ 5001, 5002 ] }
]

var tags = { 'azd-env-name': environmentName }
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module resources 'resources.bicep' = {
  name: 'portal-resources'
  scope: group
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    principalId: principalId
    postgresAdminPassword: postgresAdminPassword
    routerToken: routerToken
    authSigningKey: authSigningKey
    adminPassword: adminPassword
    relayKey: relayKey
    adminEmail: adminEmail
    postgresAdminLogin: postgresAdminLogin
    apiImage: apiImage
    webImage: webImage
    routerImage: routerImage
    apiMinReplicas: apiMinReplicas
    apiMaxReplicas: apiMaxReplicas
    webMinReplicas: webMinReplicas
    webMaxReplicas: webMaxReplicas
    routers: routers
  }
}

// azd reads these: the registry it pushes to, and where the Portal answers.
output AZURE_RESOURCE_GROUP string = group.name
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = resources.outputs.registryEndpoint
output AZURE_KEY_VAULT_NAME string = resources.outputs.keyVaultName
output API_URL string = resources.outputs.apiUrl
output WEB_URL string = resources.outputs.webUrl
