using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cortensor.Tests.Fixtures;

/// <summary>What an endpoint's result writes, without a server: its bytes and the context it wrote them to.</summary>
public static class ResultBodies
{
    public static async Task<(byte[] Body, HttpContext Http)> ExecuteAsync(IResult result, IServiceProvider? services = null)
    {
        var body = new MemoryStream();
        var http = new DefaultHttpContext
        {
            RequestServices = services ?? new ServiceCollection().AddSingleton<ILoggerFactory>(NullLoggerFactory.Instance).BuildServiceProvider(),
        };
        http.Response.Body = body;
        await result.ExecuteAsync(http);
        await http.Response.BodyWriter.FlushAsync();
        return (body.ToArray(), http);
    }
}
