using Cortensor.Api.Infrastructure;
using Microsoft.Extensions.Configuration;

namespace Cortensor.Tests.Unit;

public class ReplicaIdTests
{
    private static string Resolve(params (string Key, string Value)[] settings) =>
        ReplicaId.Resolve(new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value))).Build());

    [Fact]
    public void AnAspireReplicaIsNamedAsTheDashboardNamesIt()
    {
        Assert.Equal("api-njgtzqcs", Resolve(("OTEL_SERVICE_NAME", "api"), ("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=njgtzqcs,deployment.environment=dev")));
        Assert.Equal("api-njgtzqcs", Resolve(("OTEL_SERVICE_NAME", "api"), ("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=api-njgtzqcs")));
    }

    [Fact]
    public void AConfiguredIdWinsAndAProcessWithoutAnyIsNamedByMachineAndProcess()
    {
        Assert.Equal("eu-1", Resolve(("Replica:Id", "eu-1"), ("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=x")));
        Assert.Equal("api--3", Resolve(("CONTAINER_APP_REPLICA_NAME", "api--3")));
        Assert.Equal($"{Environment.MachineName}-{Environment.ProcessId}", Resolve());
    }
}
