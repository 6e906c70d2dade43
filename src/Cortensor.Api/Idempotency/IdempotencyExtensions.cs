namespace Cortensor.Api.Idempotency;

public static class IdempotencyExtensions
{
    /// <summary>Idempotency-Key on the /v1 POST endpoints: one run per key and body, its answer replayed (see docs/api.md).</summary>
    public static WebApplicationBuilder AddIdempotency(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<IdempotencyOptions>().BindConfiguration("Idempotency")
            .Validate(o => o.RetentionHours >= 1 && o.MaxStoredBytes > 0 && o.MaxCapturedBytes >= o.MaxStoredBytes,
                "Idempotency: RetentionHours must be at least 1, MaxStoredBytes positive and MaxCapturedBytes at least MaxStoredBytes.")
            .ValidateOnStart();
        builder.Services.AddSingleton<IdempotencyStore>();
        builder.Services.AddSingleton<IdempotencyFilter>();
        builder.Services.AddSingleton<ReplayLimiter>();
        return builder;
    }

    /// <summary>The endpoint honours Idempotency-Key (after the key check of its group).</summary>
    public static RouteHandlerBuilder WithIdempotencyKey(this RouteHandlerBuilder endpoint) => endpoint.AddEndpointFilter<IdempotencyFilter>();
}
