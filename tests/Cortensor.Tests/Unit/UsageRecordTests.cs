using Cortensor.Api.Data;
using Cortensor.Api.Metering;

namespace Cortensor.Tests.Unit;

public sealed class UsageRecordTests
{
    private static UsageRecord Record(string path = "/v1/chat/completions", string? taskId = "task-7") => new(
        "evt_0190b5b2a1c07e3a9f0e6d4c2b1a0918", "req_abc", Guid.NewGuid(), Guid.NewGuid(), BillingMode.PrepaidCredits,
        "gpt-oss-20b", "oss-20b", "router-oss20b-1", 2001, "POST", path, 200, null, 20, 10, 0.0000060m, 5, null, false,
        DateTimeOffset.UtcNow, TaskId: taskId, TraceId: "0af7651916cd43dd8448eb211c80319c");

    [Fact]
    public void ARecordWhoseTextIsAllStorableIsItsOwnNormalForm()
    {
        var record = Record();

        Assert.Same(record, record.Normalised());
    }

    [Fact]
    public void ARecordWithAnUnstorableFieldIsCopiedWithThatFieldMadeStorableAndTheRestAsItWas()
    {
        var record = Record(path: "/v1/chat\0/completions", taskId: "task 7");

        var normal = record.Normalised();

        Assert.NotSame(record, normal);
        Assert.Equal("/v1/chat/completions", normal.Path);
        Assert.Equal("task_7", normal.TaskId);
        Assert.Equal(record with { Path = normal.Path, TaskId = normal.TaskId }, normal);
        Assert.Same(normal, normal.Normalised());
    }
}
