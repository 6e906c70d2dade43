// One Container App of the Portal: the Api, the Web or a router of a pool.
// Secrets are Key Vault references read with the shared identity; nothing secret passes through here.

@description('Container App name; also its address inside the environment (http://NAME).')
param name string
param location string
param tags object = {}
@description('The azd service this app is deployed as (azure.yaml).')
param serviceName string
param environmentId string
param identityId string
param registryServer string
@description('Image to run; empty on the first provision, before azd has built one.')
param image string
param targetPort int = 8080
@description('Reachable from the internet (Api, Web) or only inside the environment (routers).')
param external bool
param minReplicas int
param maxReplicas int
@description('Concurrent HTTP requests per replica before the platform adds one.')
param concurrentRequests int = 50
@description('Blazor Server circuits must come back to the replica that holds them.')
param stickySessions bool = false
@description('Startup, liveness and readiness probes against the service defaults endpoints (/alive, /health).')
param probes array
@description('Key Vault secrets this app reads: [{ name, secretName }].')
param keyVaultSecrets array = []
param keyVaultUri string
@description('Environment variables: [{ name, value }] or [{ name, secretRef }].')
param env array = []
param args array = []

// Until azd deploys the real image, a public placeholder (listening on 80, without our probes) keeps
// the first provision from waiting on a revision that can never become healthy.
var placeholder = 'mcr.microsoft.com/azuredocs/containerapps-helloworld:latest'
var hasImage = !empty(image)

resource app 'Microsoft.App/containerApps@2025-01-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    managedEnvironmentId: environmentId
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: external
        targetPort: hasImage ? targetPort : 80
        transport: 'http'
        // Inside the environment the Api calls routers over plain http://NAME.
        allowInsecure: !external
        stickySessions: { affinity: stickySessions ? 'sticky' : 'none' }
      }
      registries: [
        {
          server: registryServer
          identity: identityId
        }
      ]
      secrets: [for s in keyVaultSecrets: {
        name: s.name
        keyVaultUrl: '${keyVaultUri}secrets/${s.secretName}'
        identity: identityId
      }]
    }
    template: {
      containers: [
        {
          name: name
          image: hasImage ? image : placeholder
          args: hasImage ? args : []
          env: env
          probes: hasImage ? probes : []
          resources: {
            cpu: json('0.5')
            memory: '1Gi'
          }
        }
      ]
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
        rules: [
          {
            name: 'http-concurrency'
            http: {
              metadata: { concurrentRequests: string(concurrentRequests) }
            }
          }
        ]
      }
    }
  }
}

output fqdn string = app.properties.configuration.ingress.fqdn
output name string = app.name
