using System.Text.Json.Serialization.Metadata;
using Cortensor.Api.Infrastructure;
using Microsoft.AspNetCore.Http.Metadata;

namespace Cortensor.Api.Inference;

/// <summary>A whole (non-streamed) answer: the JSON the framework's result would write, sent with its length (<see cref="JsonBody"/>).</summary>
public sealed class JsonAnswer<T>(T value, JsonTypeInfo<T> type) : IResult, IStatusCodeHttpResult, IValueHttpResult, IValueHttpResult<T>, IContentTypeHttpResult
{
    private const string JsonContentType = "application/json; charset=utf-8";

    public T Value => value;
    object? IValueHttpResult.Value => value;
    public int? StatusCode => StatusCodes.Status200OK;
    public string ContentType => JsonContentType;

    public Task ExecuteAsync(HttpContext http)
    {
        http.Response.StatusCode = StatusCodes.Status200OK;
        return JsonBody.WriteAsync(http.Response, value, type, JsonContentType);
    }
}

public static class JsonAnswer
{
    public static JsonAnswer<T> Of<T>(T value, JsonTypeInfo<T> type) => new(value, type);
}
