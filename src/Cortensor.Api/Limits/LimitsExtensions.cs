using Cortensor.Api.Infrastructure;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Cortensor.Api.Limits;

public static class LimitsExtensions
{
    /// <summary>Steps 4-5 of the hot path: shared rate limits, concurrency, quotas and credits as reservations, and their reaper.</summary>
    public static WebApplicationBuilder AddLimits(this WebApplicationBuilder builder)
    {
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddOptions<LimitsOptions>().BindConfiguration("Limits")
            .Validate(o => o.ReservationSeconds >= 120 && o.ReplicaSilenceSeconds >= 10 && o.ReaperIntervalSeconds >= 1,
                "Limits: ReservationSeconds must be at least 120, ReplicaSilenceSeconds at least 10, ReaperIntervalSeconds at least 1.")
            .ValidateOnStart();
        builder.Services.AddSingleton<ReplicaIdentity>();
        builder.Services.AddSingleton<HotCounters>();
        builder.Services.AddSingleton<LocalAdmission>();
        builder.Services.AddSingleton<AdmissionGate>();
        builder.Services.AddHostedService<ReservationReaper>();
        return builder;
    }
}
