using System.Text.Json;
using Cortensor.Api.Infrastructure;
using Microsoft.AspNetCore.Diagnostics;

namespace Cortensor.Api.Errors;

/// <summary>Failures nobody handled, and framework rejections (bad JSON, body too large), in the one error shape.</summary>
public static class ErrorHandling
{
    public static WebApplicationBuilder AddErrorHandling(this WebApplicationBuilder builder)
    {
        builder.Services.AddProblemDetails();
        return builder;
    }

    public static IApplicationBuilder UseErrorHandling(this WebApplication app)
    {
        app.UseExceptionHandler(handler => handler.Run(async http =>
        {
            var exception = http.Features.Get<IExceptionHandlerFeature>()?.Error;
            var error = exception switch
            {
                BadHttpRequestException { StatusCode: 413 } => ApiError.BodyTooLarge(http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize ?? 0),
                BadHttpRequestException { InnerException: JsonException json } => ApiError.MalformedJson(json.Path, "check the syntax and the types of the fields."),
                BadHttpRequestException bad => ApiError.BadRequest(bad.Message),
                Keys.KeyProviderUnavailableException provider => ApiError.DependencyUnavailable($"The key provider ({provider.Provider})"),
                _ => ApiError.Internal(),
            };
            // The exception handler cleared the response's headers, the request id's among them: an unexpected 500 is
            // the answer most in need of the id that finds it in the logs.
            http.Response.Headers[RequestId.Header] = http.GetRequestId();
            await new ErrorResult(error).ExecuteAsync(http);
        }));
        // Unmatched routes and wrong methods answer in the same shape.
        app.UseStatusCodePages(async context =>
        {
            var http = context.HttpContext;
            if (http.Response.HasStarted || http.Response.ContentLength > 0) return;
            var error = http.Response.StatusCode switch
            {
                // Outside Development, minimal APIs answer unreadable bodies with a bare 400.
                400 => new ApiError(400, "invalid_request_error", "bad_request", "The request could not be read: check that the body is valid JSON of the documented shape and the parameters are well formed."),
                404 => new ApiError(404, "invalid_request_error", "not_found", $"No endpoint at {http.Request.Method} {http.Request.Path}."),
                405 => new ApiError(405, "invalid_request_error", "method_not_allowed", $"{http.Request.Method} is not allowed on {http.Request.Path}."),
                // A body that came too slowly (Kestrel's minimum data rate): the server gave up reading it.
                408 => new ApiError(408, "invalid_request_error", "request_timeout", "The request body arrived too slowly and was not read; send it again."),
                // Minimal APIs answer a body over the limit themselves, with a bare 413.
                413 => ApiError.BodyTooLarge(http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize ?? 0),
                // Routing's own answer to a body that is not JSON, before the key is checked: the same as the reader's.
                415 => ApiError.UnsupportedMediaType(),
                _ => null,
            };
            if (error is not null) await new ErrorResult(error).ExecuteAsync(http);
        });
        return app;
    }
}
