using Microsoft.EntityFrameworkCore;

namespace Cortensor.Api.Data;

/// <summary>
/// The launch catalog as seed data inside the migrations: plans, models with prices, pools,
/// routers and their dedicated sessions. Derived from <see cref="LaunchTopology"/> so the
/// database routes to exactly the routers the AppHost starts.
/// </summary>
internal static class PortalSeed
{
    private static readonly DateTimeOffset Launch = new(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);

    public static void Apply(ModelBuilder b)
    {
        b.Entity<Plan>().HasData(
            new Plan { Id = "free", Name = "Free", BillingMode = BillingMode.MonthlyQuota, RequestsPerMinute = 60, TokensPerMinute = 100_000, MonthlyTokenQuota = 1_000_000, MaxConcurrentRequests = 8, MonthlyPriceUsd = 0m },
            new Plan { Id = "pro", Name = "Pro", BillingMode = BillingMode.PrepaidCredits, RequestsPerMinute = 1_000, TokensPerMinute = 2_000_000, MonthlyTokenQuota = null, MaxConcurrentRequests = 256, MonthlyPriceUsd = 0m },
            // Negotiated high-volume contracts (and the load benchmark): limits high enough not to bind.
            new Plan { Id = "scale", Name = "Scale", BillingMode = BillingMode.PrepaidCredits, RequestsPerMinute = 10_000_000, TokensPerMinute = 2_000_000_000, MonthlyTokenQuota = null, MaxConcurrentRequests = 100_000, MonthlyPriceUsd = 0m });

        b.Entity<Model>().HasData(LaunchTopology.Models.Select(m => new Model
        {
            Id = m.Alias, DisplayName = m.DisplayName, Family = m.Family, InputPricePer1K = m.InputPricePer1K,
            OutputPricePer1K = m.OutputPricePer1K, ContextWindow = m.ContextWindow, Enabled = true, CreatedAt = Launch,
        }));

        b.Entity<RouterPool>().HasData(LaunchTopology.Pools.Select(p => new RouterPool { Id = p.Name, CreatedAt = Launch }));
        b.Entity<RouterPoolModel>().HasData(LaunchTopology.Models.Select(m => new RouterPoolModel
        {
            ModelId = m.Alias, PoolId = m.Pool, BackendModel = LaunchTopology.Pools.Single(p => p.Name == m.Pool).BackendModel,
        }));
        b.Entity<Router>().HasData(LaunchTopology.Pools.SelectMany(p => p.Routers.Select(r => new Router
        {
            Id = r.Name, PoolId = p.Name, BaseUrl = $"http://{r.Name}", Enabled = true, CreatedAt = Launch,
        })));
        b.Entity<RouterSession>().HasData(LaunchTopology.Pools.SelectMany(p => p.Routers).SelectMany(r =>
            r.Sessions.Select(s => new RouterSession { Id = s, RouterId = r.Name, Enabled = true })));

        // Free plan: the free-tier models; Pro: every model.
        var policyIds = 0;
        b.Entity<ModelAccessPolicy>().HasData(
            LaunchTopology.Models.Where(m => m.FreeTier).Select(m => Policy("free", m.Alias, ++policyIds))
                .Concat(LaunchTopology.Models.Select(m => Policy("pro", m.Alias, ++policyIds)))
                .Concat(LaunchTopology.Models.Select(m => Policy("scale", m.Alias, ++policyIds))));
    }

    private static ModelAccessPolicy Policy(string plan, string model, int n) => new()
    {
        Id = new Guid($"00000000-0000-0000-0000-{n:D12}"), PlanId = plan, ModelId = model, Allowed = true,
    };
}
