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
            .Validate(o => o.LeaseShare >= 2 && o.LeaseMaxRequests >= 8 && o.LeaseMaxTokens >= 1 && o.LeaseMaxConcurrency >= 2
                    && o.LeaseUsd > 0 && o.LeaseQuotaTokens > 0 && o.LeaseAfterRequests >= 1 && o.LeaseIdleSeconds >= 1,
                "Limits: LeaseShare must be at least 2, LeaseMaxRequests at least 8, LeaseMaxConcurrency at least 2, LeaseAfterRequests and LeaseIdleSeconds at least 1, the other lease sizes positive.")
            .ValidateOnStart();
        builder.Services.AddSingleton<ReplicaIdentity>();
        builder.Services.AddSingleton<HotCounters>();
        builder.Services.AddSingleton<LocalAdmission>();
        builder.Services.AddSingleton<AdmissionLeases>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<AdmissionLeases>());
        builder.Services.AddSingleton<AdmissionGate>();
        builder.Services.AddHostedService<ReservationReaper>();
        return builder;
    }
}
