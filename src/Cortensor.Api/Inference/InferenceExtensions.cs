namespace Cortensor.Api.Inference;

public static class InferenceExtensions
{
    /// <summary>Steps 3 and 7 of the hot path: the OpenAI-compatible dialects, entitlement and normalisation.</summary>
    public static WebApplicationBuilder AddInference(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<InferenceOptions>().BindConfiguration("Inference")
            .Validate(o => o.MaxRequestBytes > 0 && o.DefaultMaxTokens > 0, "Inference: MaxRequestBytes and DefaultMaxTokens must be positive.")
            // A body is gathered in one array: past 1 GiB its growth would overflow, and a client would get a 500 for a 413.
            .Validate(o => o.MaxRequestBytes <= 1L << 30, "Inference: MaxRequestBytes may be at most 1 GiB (1073741824).")
            .Validate(o => o.PromptCountCacheMegabytes >= 0, "Inference: PromptCountCacheMegabytes must be 0 (off) or more.")
            .ValidateOnStart();
        builder.Services.AddSingleton<PromptCounts>();
        builder.Services.AddSingleton<InferenceHandler>();
        builder.Services.AddHostedService<TokenizerPreload>();
        return builder;
    }

    /// <summary>
    /// Every prompt is counted before admission: the vocabularies are loaded before the replica serves, so that no
    /// customer's request waits for them. Hosted services start before Kestrel does.
    /// </summary>
    private sealed class TokenizerPreload : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => Task.Run(() =>
        {
            Cortensor.Contracts.ModelTokenizer.GptOss.Preload();
            Cortensor.Contracts.ModelTokenizer.ByteBound.Preload();
        }, cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
