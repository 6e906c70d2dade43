using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using Json.Schema;

namespace Cortensor.Api.Inference;

/// <summary>
/// What a customer's strict schema may cost the Portal when an answer is checked against it. The check (JsonSchema.Net)
/// has no budget of its own, and the schema is the customer's: a chain of <c>anyOf</c>s that each refer twice to the next
/// doubled the work and the memory at every link (17 links: 1.7 s and 600 MB for one answer), and <c>pattern</c>s built
/// to backtrack cost up to the regex timeout each, one after another (48 of them: over 30 s). Hand-written: the library
/// offers no way to bound either.
/// </summary>
public static class SchemaLimits
{
    /// <summary>The most subschemas one value of the answer may be checked against at one place of the schema.</summary>
    public const int MaxChecksPerValue = 2_000;

    /// <summary>The time all of an answer's strings may take against all of the schema's patterns, before the check proper.</summary>
    public static readonly TimeSpan PatternBudget = TimeSpan.FromMilliseconds(250);

    private static readonly string[] SameValue = ["anyOf", "oneOf", "allOf", "not", "if", "then", "else", "dependentSchemas"];
    private static readonly string[] References = ["$ref", "$dynamicRef", "$recursiveRef"];
    private static readonly ConditionalWeakTable<JsonSchema, Regex[]> Patterns = new();

    /// <summary>
    /// Why the schema would cost too much to check an answer against, or null. Counts, for each subschema, the subschemas
    /// a value is checked against without going into it (through anyOf/oneOf/allOf/not/if/then/else and references):
    /// a chain that branches multiplies them, and past <see cref="MaxChecksPerValue"/> the schema is refused.
    /// </summary>
    public static string? Complexity(JsonElement root)
    {
        var anchors = Anchors(root);
        var known = new Dictionary<string, (long Checks, HashSet<string> Recursion)>(StringComparer.Ordinal);
        // Being visited: 'chain' since the value was last gone into (a loop there never ends), 'open' at all (recursion
        // through a value gone into is how trees are described, and ends with the value).
        var open = new HashSet<string>(StringComparer.Ordinal);
        string? why = null;
        Visit(root, "#", 0, new HashSet<string>(StringComparer.Ordinal));
        return why;

        // The subschemas a value meets at this one (itself included), and the ways (the steps into the value) by which
        // this one recurses: two alternatives for one value that recurse the same way double the work at every level of
        // the answer's nesting, which no count of the schema alone shows, so they are refused.
        (long Checks, HashSet<string> Recursion) Visit(JsonElement node, string at, int depth, HashSet<string> chain)
        {
            if (why is not null || node.ValueKind != JsonValueKind.Object || depth > 128) return (1, []);
            if (known.TryGetValue(at, out var memo)) return memo;
            if (chain.Contains(at))
            {
                why = $"'{at}' refers back to itself without going into the value.";
                return (0, []);
            }
            if (open.Contains(at)) return (1, ["*"]);
            chain.Add(at);
            open.Add(at);
            long total = 1;
            var recursion = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in node.EnumerateObject())
            {
                var value = property.Value;
                if (References.Contains(property.Name) && value.ValueKind == JsonValueKind.String)
                {
                    if (Resolve(root, anchors, value.GetString()!) is { } target) Alternative(Visit(target.Node, target.At, depth + 1, chain));
                }
                else if (SameValue.Contains(property.Name))
                {
                    if (value.ValueKind == JsonValueKind.Array)
                    {
                        var i = 0;
                        foreach (var branch in value.EnumerateArray()) Alternative(Visit(branch, $"{at}/{property.Name}/{i++}", depth + 1, chain));
                    }
                    else if (value.ValueKind == JsonValueKind.Object && property.Name == "dependentSchemas")
                        foreach (var dependent in value.EnumerateObject()) Alternative(Visit(dependent.Value, $"{at}/{property.Name}/{Escape(dependent.Name)}", depth + 1, chain));
                    else Alternative(Visit(value, $"{at}/{property.Name}", depth + 1, chain));
                }
                else if (value.ValueKind is JsonValueKind.Object or JsonValueKind.Array)
                {
                    // Goes into the value (properties, items, …) or holds definitions: counted where it is used.
                    foreach (var way in VisitInside(value, $"{at}/{Escape(property.Name)}", depth + 1)) recursion.Add($"{property.Name}/{way}");
                }
                if (total > MaxChecksPerValue && why is null)
                    why = $"one value would be checked against more than {MaxChecksPerValue} subschemas at '{at}' (anyOf/oneOf/allOf and references that branch).";
            }
            chain.Remove(at);
            open.Remove(at);
            known[at] = (total, recursion);
            return (total, recursion);

            // Another subschema the same value is checked against.
            void Alternative((long Checks, HashSet<string> Recursion) other)
            {
                total += other.Checks;
                foreach (var way in other.Recursion)
                    if (!recursion.Add(way) && why is null)
                        why = $"at '{at}', two subschemas of one value each recurse into it the same way ('{way}'), which doubles the work at every level of an answer.";
            }
        }

        HashSet<string> VisitInside(JsonElement node, string at, int depth)
        {
            if (why is not null || depth > 128) return [];
            if (node.ValueKind == JsonValueKind.Array)
            {
                var ways = new HashSet<string>(StringComparer.Ordinal);
                var i = 0;
                foreach (var item in node.EnumerateArray())
                {
                    foreach (var way in VisitInside(item, $"{at}/{i}", depth + 1)) ways.Add($"{i}/{way}");
                    i++;
                }
                return ways;
            }
            if (node.ValueKind != JsonValueKind.Object) return [];
            // A subschema itself (it has keywords), or a map of subschemas (properties, $defs, …): each is visited, a
            // value's own chain starting afresh.
            return Visit(node, at, depth, new HashSet<string>(StringComparer.Ordinal)).Recursion;
        }
    }

    /// <summary>
    /// The first reference that does not lead to a part of <paramref name="root"/>, or null. Building a schema does not
    /// follow references and nothing is fetched, so a reference must be to the schema itself. A schema that gives a part
    /// of itself an <c>$id</c> moves the base its references resolve from; that rare case is left to the check of the answer.
    /// </summary>
    public static string? UnresolvedReference(JsonElement root)
    {
        var references = new List<string>();
        EachMember(root, (_, member, _) =>
        {
            if (member.Value.ValueKind == JsonValueKind.String && References.Contains(member.Name)) references.Add(member.Value.GetString()!);
        });
        if (references.Count == 0 || MovesBase(root)) return null;
        var anchors = Anchors(root);
        return references.FirstOrDefault(reference => Resolve(root, anchors, reference) is null);
    }

    /// <summary>Keeps the schema's patterns beside its compiled form, for <see cref="SlowPatterns"/>.</summary>
    public static void Remember(JsonSchema compiled, JsonElement root)
    {
        var found = new HashSet<string>(StringComparer.Ordinal);
        EachMember(root, (_, member, _) =>
        {
            if (member.Name == "pattern" && member.Value.ValueKind == JsonValueKind.String) found.Add(member.Value.GetString()!);
            if (member.Name == "patternProperties" && member.Value.ValueKind == JsonValueKind.Object)
                foreach (var p in member.Value.EnumerateObject()) found.Add(p.Name);
        });
        // Built once with the schema, with the options the check proper uses (ECMAScript); no single match may take
        // longer than the whole budget. A pattern .NET cannot build was refused when the schema was.
        var regexes = new List<Regex>(found.Count);
        foreach (var pattern in found)
        {
            try
            {
                regexes.Add(new Regex(pattern, RegexOptions.ECMAScript, PatternBudget));
            }
            catch (ArgumentException)
            {
            }
        }
        if (regexes.Count > 0) Patterns.AddOrUpdate(compiled, [.. regexes]);
    }

    /// <summary>
    /// Whether every string of the answer (values and member names) meets every pattern of the schema within
    /// <see cref="PatternBudget"/> in all: the check proper then meets only pairs tried here, each quick. Null when so.
    /// </summary>
    public static string? SlowPatterns(JsonSchema schema, JsonElement instance)
    {
        if (!Patterns.TryGetValue(schema, out var patterns)) return null;
        var started = Stopwatch.GetTimestamp();
        try
        {
            return Walk(instance, 0) ? null : Slow();
        }
        catch (RegexMatchTimeoutException)
        {
            return Slow();
        }

        bool Walk(JsonElement node, int depth)
        {
            switch (node.ValueKind)
            {
                case JsonValueKind.String:
                    return Try(node.GetString()!);
                case JsonValueKind.Array:
                    foreach (var item in node.EnumerateArray()) if (!Walk(item, depth + 1)) return false;
                    return true;
                case JsonValueKind.Object:
                    foreach (var property in node.EnumerateObject())
                        if (!Try(property.Name) || !Walk(property.Value, depth + 1)) return false;
                    return true;
                default:
                    return true;
            }
        }

        bool Try(string text)
        {
            foreach (var pattern in patterns)
            {
                if (Stopwatch.GetElapsedTime(started) > PatternBudget) return false;
                _ = pattern.IsMatch(text);
            }
            return true;
        }

        string Slow() => $"the answer's strings took longer than {PatternBudget.TotalMilliseconds:0} ms to check against the schema's patterns.";
    }

    /// <summary>Whether a part of the schema has an <c>$id</c> of its own, which moves the base its references resolve from.</summary>
    internal static bool MovesBase(JsonElement root)
    {
        var moves = false;
        EachMember(root, (_, member, depth) => moves |= member.Name == "$id" && depth > 0 && member.Value.ValueKind == JsonValueKind.String);
        return moves;
    }

    internal static (JsonElement Node, string At)? Resolve(JsonElement root, Dictionary<string, JsonElement> anchors, string reference)
    {
        if (reference == "#") return (root, "#");
        if (!reference.StartsWith('#')) return null;
        var fragment = Uri.UnescapeDataString(reference[1..]);
        if (!fragment.StartsWith('/')) return anchors.TryGetValue(fragment, out var anchored) ? (anchored, "#" + fragment) : null;
        return Json.Pointer.JsonPointer.TryParse(fragment, out var pointer) && pointer.Evaluate(root) is { } target ? (target, "#" + fragment) : null;
    }

    internal static Dictionary<string, JsonElement> Anchors(JsonElement root)
    {
        var anchors = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        // Only a subschema's anchor names it: an "$anchor" inside 'examples', 'const' or 'default' is data.
        EachSubschema(root, schema =>
        {
            foreach (var name in (ReadOnlySpan<string>)["$anchor", "$dynamicAnchor"])
                if (schema.TryGetProperty(name, out var anchor) && anchor.ValueKind == JsonValueKind.String) anchors.TryAdd(anchor.GetString()!, schema);
        });
        return anchors;
    }

    /// <summary>
    /// A number in a 'const' or 'enum' of the schema that the checker cannot compare answers with (beyond a decimal, ±7.9e28:
    /// JsonSchema.Net compares them as decimals and throws), or null.
    /// </summary>
    public static string? UncomparableNumber(JsonElement root)
    {
        string? found = null;
        EachSubschema(root, schema =>
        {
            foreach (var name in (ReadOnlySpan<string>)["const", "enum"])
                if (found is null && schema.TryGetProperty(name, out var listed)) found = Uncomparable(listed, 0);
        });
        return found;

        static string? Uncomparable(JsonElement value, int depth)
        {
            if (depth > 64) return null;
            switch (value.ValueKind)
            {
                case JsonValueKind.Number:
                    return value.TryGetDecimal(out _) ? null : value.GetRawText();
                case JsonValueKind.Array:
                    foreach (var item in value.EnumerateArray()) if (Uncomparable(item, depth + 1) is { } number) return number;
                    return null;
                case JsonValueKind.Object:
                    foreach (var member in value.EnumerateObject()) if (Uncomparable(member.Value, depth + 1) is { } number) return number;
                    return null;
                default:
                    return null;
            }
        }
    }

    private static readonly string[] OneSchema =
        ["not", "if", "then", "else", "contains", "additionalProperties", "propertyNames", "unevaluatedProperties", "unevaluatedItems", "additionalItems", "items", "contentSchema"];
    private static readonly string[] SchemaLists = ["allOf", "anyOf", "oneOf", "prefixItems", "items"];
    private static readonly string[] SchemaMaps = ["properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"];

    /// <summary>Every subschema (object) of the schema, the root included, found through the keywords that hold schemas only.</summary>
    internal static void EachSubschema(JsonElement root, Action<JsonElement> visit)
    {
        Walk(root, 0);

        void Walk(JsonElement node, int depth)
        {
            if (node.ValueKind != JsonValueKind.Object || depth > 128) return;
            visit(node);
            foreach (var member in node.EnumerateObject())
            {
                var value = member.Value;
                if (OneSchema.Contains(member.Name) && value.ValueKind == JsonValueKind.Object) Walk(value, depth + 1);
                else if (SchemaLists.Contains(member.Name) && value.ValueKind == JsonValueKind.Array)
                    foreach (var item in value.EnumerateArray()) Walk(item, depth + 1);
                else if (SchemaMaps.Contains(member.Name) && value.ValueKind == JsonValueKind.Object)
                    foreach (var entry in value.EnumerateObject()) Walk(entry.Value, depth + 1);
            }
        }
    }

    /// <summary>Every member of every object in the schema, with its object and that object's depth (the root's is 0).</summary>
    private static void EachMember(JsonElement node, Action<JsonElement, JsonProperty, int> visit, int depth = 0)
    {
        if (depth > 128) return;
        if (node.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in node.EnumerateArray()) EachMember(item, visit, depth + 1);
            return;
        }
        if (node.ValueKind != JsonValueKind.Object) return;
        foreach (var member in node.EnumerateObject())
        {
            visit(node, member, depth);
            EachMember(member.Value, visit, depth + 1);
        }
    }

    internal static string Escape(string name) => name.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);
}
