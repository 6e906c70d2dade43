using System.Security.Claims;
using System.Text.Json;

namespace Cortensor.Api.Data;

/// <summary>Who did something: a signed-in user (customer or operator), or the system itself.</summary>
public sealed record AuditActor(Guid? UserId, string Name)
{
    public static readonly AuditActor System = new(null, "system");

    public static AuditActor From(ClaimsPrincipal principal) =>
        new(Guid.TryParse(principal.FindFirstValue("sub"), out var id) ? id : null,
            principal.FindFirstValue("email") ?? principal.FindFirstValue("sub") ?? "unknown");
}

/// <summary>The one way an audit entry is written: in the same unit of work as the change it records.</summary>
public static class AuditTrail
{
    // Enums by name: an operator reading before/after should see "Paused", not 1.
    private static readonly JsonSerializerOptions Json = new() { Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } };

    public static void Record(this PortalDbContext db, AuditActor actor, string action, string targetType, string targetId,
        object? before, object? after, DateTimeOffset at) =>
        db.AuditLog.Add(new AuditLogEntry
        {
            ActorUserId = actor.UserId, Actor = actor.Name, Action = action, TargetType = targetType, TargetId = targetId,
            Before = before is null ? null : JsonSerializer.Serialize(before, Json),
            After = after is null ? null : JsonSerializer.Serialize(after, Json),
            CreatedAt = at,
        });
}
