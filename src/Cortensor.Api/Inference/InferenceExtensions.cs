namespace Cortensor.Api.Inference;

public static class InferenceExtensions
{
    /// <summary>Steps 3 and 7 of the hot path: the OpenAI-compatible dialects, entitlement and normalisation.</summary>
    public static WebApplicationBuilder AddInference(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<InferenceOptions>().BindConfiguration("Inference")
            .Validate(o => o.MaxRequestBytes > 0 && o.DefaultMaxTokens > 0, "Inference: MaxRequestBytes and DefaultMaxTokens must be positive.")
            .ValidateOnStart();
        builder.Services.AddSingleton<InferenceHandler>();
        return builder;
    }
}
