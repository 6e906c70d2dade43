using Microsoft.Extensions.Options;

namespace Cortensor.Api.Metering;

public static class MeteringExtensions
{
    /// <summary>Step 8 of the hot path: the durable usage pipeline (Redis Stream buffer, disk spool, batched ledger writers, reconciliation).</summary>
    public static WebApplicationBuilder AddMetering(this WebApplicationBuilder builder)
    {
        builder.AddNpgsqlDataSource(LaunchTopology.Database);
        builder.Services.AddOptions<MeteringOptions>().BindConfiguration(MeteringOptions.Section)
            .Validate(o => o.Writers is >= 1 and <= 64 && o.ClaimIdleSeconds > 0 && o.ReconcileSeconds > 0
                && o.SettleLingerMilliseconds is >= 0 and <= 1000 && o.WriterLingerMilliseconds is >= 0 and <= 5000
                && o.ReconcileMaxPendingCharges is >= 100 and <= 1_000_000,
                "Metering: Writers must be 1-64, ClaimIdleSeconds and ReconcileSeconds positive, SettleLingerMilliseconds 0-1000, WriterLingerMilliseconds 0-5000 and ReconcileMaxPendingCharges 100-1000000.")
            .ValidateOnStart();
        builder.Services.AddSingleton<UsageSpool>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<UsageSpool>());
        builder.Services.AddSingleton<UsageMeter>();
        builder.Services.AddSingleton<SettlementQueue>();
        builder.Services.AddSingleton<UsageTrackers>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<SettlementQueue>());
        builder.Services.AddHealthChecks().AddCheck<UsagePipelineHealthCheck>("usage-pipeline");
        builder.Services.AddSingleton<LedgerReconciler>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<LedgerReconciler>());
        // Writers per replica: hosted services are registered before options can be read, so the count
        // comes from the same section, bound once here.
        var writers = builder.Configuration.GetSection(MeteringOptions.Section).Get<MeteringOptions>()?.Writers ?? new MeteringOptions().Writers;
        for (var i = 0; i < writers; i++)
        {
            var index = i;
            builder.Services.AddSingleton<IHostedService>(sp => ActivatorUtilities.CreateInstance<UsageWriter>(sp, index).Observe());
        }
        return builder;
    }
}
