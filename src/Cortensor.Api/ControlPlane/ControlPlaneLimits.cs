namespace Cortensor.Api.ControlPlane;

/// <summary>
/// The "ControlPlane" section: how much one customer can create. Keys per organisation depend on the plan
/// (a plan not listed gets <see cref="DefaultApiKeysPerOrganization"/>); revoked and expired keys do not count.
/// </summary>
public sealed class ControlPlaneLimits
{
    public const string Section = "ControlPlane";

    public Dictionary<string, int> ApiKeysPerOrganization { get; set; } = new(StringComparer.OrdinalIgnoreCase) { ["free"] = 5, ["pro"] = 50 };
    public int DefaultApiKeysPerOrganization { get; set; } = 20;
    /// <summary>Free-plan organisations one (verified) user may own; paid organisations are not capped.</summary>
    public int FreeOrganizationsPerUser { get; set; } = 3;

    public int ApiKeysFor(string plan) => ApiKeysPerOrganization.TryGetValue(plan, out var n) ? n : DefaultApiKeysPerOrganization;
}
