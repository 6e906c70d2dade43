using Cortensor.Api.Keys.Unkey;
using Microsoft.Extensions.Options;
using Refit;

namespace Cortensor.Api.Keys;

public static class KeyProviderExtensions
{
    /// <summary>The key provider <c>Keys:Provider</c> names: the Portal itself (builtin, the default) or Unkey.</summary>
    public static WebApplicationBuilder AddKeyProvider(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<KeyProviderOptions>().BindConfiguration(KeyProviderOptions.Section)
            .Validate(o => o.Provider is KeyProviderOptions.Builtin or KeyProviderOptions.Unkey, "Keys:Provider must be builtin or unkey.")
            .ValidateOnStart();
        var provider = builder.Configuration[$"{KeyProviderOptions.Section}:Provider"] ?? KeyProviderOptions.Builtin;
        if (provider != KeyProviderOptions.Unkey)
        {
            builder.Services.AddSingleton<IKeyProvider, BuiltinKeyProvider>();
            return builder;
        }

        builder.Services.AddOptions<UnkeyOptions>().BindConfiguration(UnkeyOptions.Section)
            .Validate(o => Uri.TryCreate(o.BaseUrl, UriKind.Absolute, out _), "Keys:Unkey:BaseUrl must be an absolute URL.")
            .Validate(o => o.RootKey.Length > 0, "Keys:Unkey:RootKey is required with Keys:Provider=unkey.")
            .Validate(o => o.ApiId.Length >= 3, "Keys:Unkey:ApiId is required with Keys:Provider=unkey.")
            .ValidateOnStart();
        builder.Services
            .AddRefitGeneratedClient<IUnkeyApi>(new RefitSettings { ContentSerializer = new SystemTextJsonContentSerializer(UnkeyJson.Options) })
            .ConfigureHttpClient((services, http) =>
            {
                var unkey = services.GetRequiredService<IOptions<UnkeyOptions>>().Value;
                http.BaseAddress = new Uri(unkey.BaseUrl);
                http.DefaultRequestHeaders.Authorization = new("Bearer", unkey.RootKey);
            });
        builder.Services.AddSingleton<IKeyProvider, UnkeyKeyProvider>();
        return builder;
    }
}
