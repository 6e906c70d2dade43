using System.Text.Json.Serialization;
using Cortensor.Api.Errors;
using Cortensor.Api.Inference;
using Cortensor.Api.Metering;

namespace Cortensor.Api.Infrastructure;

/// <summary>Source-generated serialisation for everything on the hot path: no reflection per request.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    NumberHandling = JsonNumberHandling.Strict,
    AllowTrailingCommas = false)]
[JsonSerializable(typeof(ErrorEnvelope))]
[JsonSerializable(typeof(ChatCompletionRequest))]
[JsonSerializable(typeof(CompletionRequest))]
[JsonSerializable(typeof(ChatCompletion))]
[JsonSerializable(typeof(ChatCompletionChunk))]
[JsonSerializable(typeof(TextCompletion))]
[JsonSerializable(typeof(ModelList))]
[JsonSerializable(typeof(ResponseRequest))]
[JsonSerializable(typeof(ResponseObject))]
[JsonSerializable(typeof(ResponseLifecycleEvent))]
[JsonSerializable(typeof(ResponseItemEvent))]
[JsonSerializable(typeof(ResponsePartEvent))]
[JsonSerializable(typeof(ResponseTextDeltaEvent))]
[JsonSerializable(typeof(ResponseTextDoneEvent))]
[JsonSerializable(typeof(ResponseErrorEvent))]
[JsonSerializable(typeof(ResponseArgumentsDeltaEvent))]
[JsonSerializable(typeof(ResponseArgumentsDoneEvent))]
[JsonSerializable(typeof(ModelCard))]
[JsonSerializable(typeof(UsageRecord))]
internal sealed partial class PortalJsonContext : JsonSerializerContext;
