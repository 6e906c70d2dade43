using System.Globalization;
using System.Numerics;
using System.Text.Json;

namespace Cortensor.Api.Inference;

/// <summary>
/// Finds strict schemas no JSON value can meet (<c>{"not":{}}</c>, <c>"enum": []</c>, a <c>minimum</c> above its
/// <c>maximum</c>, a required property that can never be met, <c>allOf</c> members of different types, …). Such a schema
/// fails every answer after the router has been paid, with a 502 the SDKs retry: it is refused as a 400 instead.
/// <para>
/// Hand-written (no .NET library decides this). The analysis is one-sided by design: it only says "never" where the
/// schema's own keywords contradict each other, and assumes a value can be found wherever it cannot tell (patterns,
/// conditionals, <c>unevaluated*</c>, recursion, references under a nested <c>$id</c>), so a schema some value meets is
/// never refused. For each subschema it works out which JSON types a value of it could still have.
/// </para>
/// </summary>
public static class SchemaContradictions
{
    [Flags]
    private enum Kinds
    {
        None = 0,
        Null = 1,
        Boolean = 2,
        Integer = 4,
        // A number with a fractional part: JSON Schema counts 1.0 as an integer.
        Fraction = 8,
        String = 16,
        Array = 32,
        Object = 64,
        Number = Integer | Fraction,
        Any = Null | Boolean | Number | String | Array | Object,
    }

    // Keywords that assert nothing: a subschema of only these is met by every value. 'format' is left out (it asserts
    // when a validator is told to), so a 'not' of it is never taken to exclude everything.
    private static readonly HashSet<string> Annotations = new(StringComparer.Ordinal)
    {
        "title", "description", "$comment", "default", "examples", "deprecated", "readOnly", "writeOnly",
        "$id", "$schema", "$anchor", "$dynamicAnchor", "$defs", "definitions", "$vocabulary", "contentMediaType", "contentEncoding",
    };

    /// <summary>The most items of an array whose own subschemas are looked at (minItems can be any number).</summary>
    private const int MostItemsLookedAt = 64;

    /// <summary>Why no value can meet <paramref name="root"/>, or null when some value might.</summary>
    public static string? Find(JsonElement root)
    {
        var analysis = new Analysis(root);
        var (kinds, why) = analysis.Allowed(root, "#", 0);
        return kinds == Kinds.None ? why ?? "its keywords leave no value." : null;
    }

    private sealed class Analysis
    {
        private readonly JsonElement _root;
        private readonly Dictionary<string, JsonElement> _anchors;
        // A part with its own $id moves the base its references resolve from: such references are not followed.
        private readonly bool _followReferences;
        // Before 2019-09, keywords beside a $ref are ignored, and minContains/maxContains are not keywords.
        private readonly bool _refStandsAlone;
        // Before 2020-12, prefixItems is not a keyword.
        private readonly bool _prefixItems;
        private readonly Dictionary<string, (Kinds, string?)> _known = new(StringComparer.Ordinal);
        private readonly HashSet<string> _open = new(StringComparer.Ordinal);

        public Analysis(JsonElement root)
        {
            _root = root;
            _anchors = SchemaLimits.Anchors(root);
            _followReferences = !SchemaLimits.MovesBase(root);
            var dialect = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("$schema", out var named) && named.ValueKind == JsonValueKind.String
                ? named.GetString()! : "";
            _refStandsAlone = dialect.Contains("draft-0", StringComparison.Ordinal);
            _prefixItems = !_refStandsAlone && !dialect.Contains("2019-09", StringComparison.Ordinal);
        }

        /// <summary>The kinds of value that might meet the subschema at <paramref name="at"/>, and why the others cannot.</summary>
        public (Kinds Kinds, string? Why) Allowed(JsonElement node, string at, int depth)
        {
            if (node.ValueKind == JsonValueKind.False) return (Kinds.None, $"'{at}' is the schema false.");
            if (node.ValueKind != JsonValueKind.Object || depth > 128) return (Kinds.Any, null);
            if (_known.TryGetValue(at, out var known)) return known;
            // Recursion: assumed to be met, which is always safe here.
            if (!_open.Add(at)) return (Kinds.Any, null);
            var result = Read(node, at, depth);
            _open.Remove(at);
            _known[at] = result;
            return result;
        }

        private (Kinds, string?) Read(JsonElement node, string at, int depth)
        {
            var kinds = Kinds.Any;
            string? why = null;
            void Exclude(Kinds these, string reason)
            {
                if ((kinds & these) == Kinds.None) return;
                kinds &= ~these;
                why ??= reason;
            }

            if (node.TryGetProperty("$ref", out var reference) && reference.ValueKind == JsonValueKind.String && _followReferences
                && SchemaLimits.Resolve(_root, _anchors, reference.GetString()!) is { } target)
            {
                var (referred, referredWhy) = Allowed(target.Node, target.At, depth + 1);
                if (referred == Kinds.None) return (Kinds.None, $"'{at}' refers to '{target.At}', which can never be met: {referredWhy}");
                if (_refStandsAlone) return (referred, null);
                kinds &= referred;
            }
            else if (_refStandsAlone && node.TryGetProperty("$ref", out _))
                return (Kinds.Any, null);

            if (node.TryGetProperty("type", out var type))
            {
                var named = TypeNamed(type);
                if (named is { } declared)
                {
                    if (declared == Kinds.None) return (Kinds.None, $"'{at}' has an empty 'type' list.");
                    // Not a reason worth giving on its own: every typed subschema excludes the other types.
                    kinds &= declared;
                }
            }

            if (node.TryGetProperty("allOf", out var allOf) && allOf.ValueKind == JsonValueKind.Array)
            {
                var i = 0;
                foreach (var member in allOf.EnumerateArray())
                {
                    var (met, memberWhy) = Allowed(member, $"{at}/allOf/{i}", depth + 1);
                    if (met == Kinds.None) return (Kinds.None, memberWhy);
                    if ((kinds & met) == Kinds.None)
                        return (Kinds.None, $"'{at}/allOf/{i}' allows no type that the rest of '{at}' allows.");
                    kinds &= met;
                    i++;
                }
            }
            foreach (var choice in (ReadOnlySpan<string>)["anyOf", "oneOf"])
            {
                if (!node.TryGetProperty(choice, out var branches) || branches.ValueKind != JsonValueKind.Array) continue;
                var union = Kinds.None;
                var reasons = new List<string>();
                var i = 0;
                foreach (var branch in branches.EnumerateArray())
                {
                    var (met, branchWhy) = Allowed(branch, $"{at}/{choice}/{i++}", depth + 1);
                    union |= met & kinds;
                    if (met == Kinds.None && branchWhy is not null) reasons.Add(branchWhy);
                }
                if (union == Kinds.None)
                    return (Kinds.None, i == 0 ? $"'{at}/{choice}' is empty."
                        : reasons.Count == i ? $"no branch of '{at}/{choice}' can be met: {string.Join(" ", reasons)}"
                        : $"no branch of '{at}/{choice}' allows a type that the rest of '{at}' allows.");
                kinds &= union;
            }
            if (node.TryGetProperty("not", out var not))
            {
                if (MetByEverything(not)) return (Kinds.None, $"'{at}/not' is a schema every value meets.");
                // A 'not' of types alone excludes exactly those types.
                if (not.ValueKind == JsonValueKind.Object && not.TryGetProperty("type", out var notType) && TypeNamed(notType) is { } excluded
                    && not.EnumerateObject().All(m => m.Name == "type" || Annotations.Contains(m.Name)))
                    Exclude(excluded, $"'{at}/not' excludes the only types left.");
            }

            Numbers(node, at, Exclude);
            Strings(node, at, Exclude);
            if ((kinds & Kinds.Array) != Kinds.None) Arrays(node, at, depth, Exclude);
            if ((kinds & Kinds.Object) != Kinds.None) Objects(node, at, depth, Exclude);

            foreach (var listed in (ReadOnlySpan<string>)["enum", "const"])
            {
                if (!node.TryGetProperty(listed, out var values)) continue;
                if (listed == "enum" && values.ValueKind != JsonValueKind.Array) continue;
                var candidates = listed == "enum" ? values.EnumerateArray().ToList() : [values];
                if (candidates.Count == 0) return (Kinds.None, $"'{at}/enum' is empty.");
                var possible = Kinds.None;
                foreach (var value in candidates)
                    if (MightMeet(node, value, kinds)) possible |= KindOf(value);
                if ((kinds & possible) == Kinds.None)
                    return (Kinds.None, listed == "enum"
                        ? $"none of the values of '{at}/enum' meets the other keywords of '{at}'."
                        : $"the value of '{at}/const' does not meet the other keywords of '{at}'.");
                kinds &= possible;
            }

            if (kinds == Kinds.None && why is null) why = $"'{at}' allows no type of value (its 'type', 'allOf', 'anyOf'/'oneOf', 'not' and '$ref' together).";
            return (kinds, kinds == Kinds.None ? why : null);
        }

        private static void Numbers(JsonElement node, string at, Action<Kinds, string> exclude)
        {
            var (low, lowOpen, lowText) = Bound(node, "minimum", "exclusiveMinimum", lower: true);
            var (high, highOpen, highText) = Bound(node, "maximum", "exclusiveMaximum", lower: false);
            if (low is not { } lo || high is not { } hi) return;
            if (lo > hi || (lo == hi && (lowOpen || highOpen)))
            {
                exclude(Kinds.Number, $"at '{at}', {lowText} is not below {highText}, so no number lies between them.");
                return;
            }
            // Between them: a fraction when the interval is open-ended or the point itself is one.
            if (lo == hi && decimal.Truncate(lo) == lo)
                exclude(Kinds.Fraction, $"at '{at}', the only number allowed is {lo.ToString(CultureInfo.InvariantCulture)}.");
            try
            {
                var first = lowOpen ? decimal.Floor(lo) + 1 : decimal.Ceiling(lo);
                var last = highOpen ? decimal.Ceiling(hi) - 1 : decimal.Floor(hi);
                if (node.TryGetProperty("multipleOf", out var step) && step.ValueKind == JsonValueKind.Number
                    && Exact(step) is { } m && m >= 1 && decimal.Truncate(m) == m)
                    first = decimal.Ceiling(first / m) * m;
                if (first > last)
                    exclude(Kinds.Integer, $"at '{at}', no integer{(node.TryGetProperty("multipleOf", out _) ? " that is a multiple of 'multipleOf'" : "")} lies between {lowText} and {highText}.");
            }
            catch (OverflowException)
            {
            }
        }

        /// <summary>The tighter of a number's inclusive and exclusive bound on one side; a bound that is not a decimal is left out.</summary>
        private static (decimal? Value, bool Open, string Text) Bound(JsonElement node, string inclusive, string exclusive, bool lower)
        {
            decimal? value = null;
            var open = false;
            var text = "";
            if (node.TryGetProperty(inclusive, out var i) && Exact(i) is { } iv)
                (value, text) = (iv, $"'{inclusive}' {i.GetRawText()}");
            // A boolean exclusiveMinimum (draft 4) is left out: the bound is then taken as inclusive, which only allows more.
            if (node.TryGetProperty(exclusive, out var e) && Exact(e) is { } ev
                && (value is not { } v || (lower ? ev >= v : ev <= v)))
                (value, open, text) = (ev, true, $"'{exclusive}' {e.GetRawText()}");
            return (value, open, text);
        }

        private static void Strings(JsonElement node, string at, Action<Kinds, string> exclude)
        {
            if (Count(node, "minLength") is { } min && Count(node, "maxLength") is { } max && min > max)
                exclude(Kinds.String, $"at '{at}', 'minLength' {min} is above 'maxLength' {max}.");
        }

        private void Arrays(JsonElement node, string at, int depth, Action<Kinds, string> exclude)
        {
            var min = Count(node, "minItems") ?? 0;
            var max = Count(node, "maxItems");
            if (max is { } most && min > most)
            {
                exclude(Kinds.Array, $"at '{at}', 'minItems' {min} is above 'maxItems' {most}.");
                return;
            }
            if (node.TryGetProperty("contains", out var contains))
            {
                var minContains = (_refStandsAlone ? null : Count(node, "minContains")) ?? 1;
                var maxContains = _refStandsAlone ? null : Count(node, "maxContains");
                var minText = _refStandsAlone || !node.TryGetProperty("minContains", out _) ? "a 'contains' (at least 1)" : $"'minContains' {minContains}";
                if (maxContains is { } mc && minContains > mc)
                {
                    exclude(Kinds.Array, $"at '{at}', {minText} is above 'maxContains' {mc}.");
                    return;
                }
                if (max is { } m && minContains > m)
                {
                    exclude(Kinds.Array, $"at '{at}', {minText} is above 'maxItems' {m}.");
                    return;
                }
                if (minContains > 0)
                {
                    var (met, containsWhy) = Allowed(contains, $"{at}/contains", depth + 1);
                    if (met == Kinds.None)
                    {
                        exclude(Kinds.Array, $"an array at '{at}' must contain an item meeting '{at}/contains', which can never be met: {containsWhy}");
                        return;
                    }
                }
            }
            // The items every array of it must have: each must meet its own subschema.
            var prefix = _prefixItems && node.TryGetProperty("prefixItems", out var p) && p.ValueKind == JsonValueKind.Array ? p : default;
            var items = node.TryGetProperty("items", out var it) ? it : default;
            var (tuple, rest, restName) = items.ValueKind == JsonValueKind.Array
                ? (items, node.TryGetProperty("additionalItems", out var ai) ? ai : default, "additionalItems")
                : (prefix, items, "items");
            var tupleLength = tuple.ValueKind == JsonValueKind.Array ? tuple.GetArrayLength() : 0;
            var tupleName = items.ValueKind == JsonValueKind.Array ? "items" : "prefixItems";
            for (var i = 0; i < Math.Min(min, MostItemsLookedAt); i++)
            {
                var (schema, where) = i < tupleLength ? (tuple[i], $"{at}/{tupleName}/{i}") : (rest, $"{at}/{restName}");
                if (schema.ValueKind == JsonValueKind.Undefined) break;
                var (met, itemWhy) = Allowed(schema, where, depth + 1);
                if (met == Kinds.None)
                {
                    exclude(Kinds.Array, $"an array at '{at}' must have at least {min} item(s), and item {i} must meet '{where}', which can never be met: {itemWhy}");
                    return;
                }
                if (i >= tupleLength) break;
            }
        }

        private void Objects(JsonElement node, string at, int depth, Action<Kinds, string> exclude)
        {
            var min = Count(node, "minProperties");
            var max = Count(node, "maxProperties");
            if (min is { } least && max is { } most && least > most)
            {
                exclude(Kinds.Object, $"at '{at}', 'minProperties' {least} is above 'maxProperties' {most}.");
                return;
            }
            var required = node.TryGetProperty("required", out var r) && r.ValueKind == JsonValueKind.Array
                ? r.EnumerateArray().Where(n => n.ValueKind == JsonValueKind.String).Select(n => n.GetString()!).Distinct(StringComparer.Ordinal).ToList()
                : [];
            if (max is { } cap && required.Count > cap)
            {
                exclude(Kinds.Object, $"at '{at}', {required.Count} properties are required but 'maxProperties' is {cap}.");
                return;
            }
            if ((required.Count > 0 || min > 0) && node.TryGetProperty("propertyNames", out var names)
                // Names are strings: a propertyNames that allows no string allows no name.
                && (Allowed(names, $"{at}/propertyNames", depth + 1).Kinds & Kinds.String) == Kinds.None)
            {
                exclude(Kinds.Object, $"an object at '{at}' must have a property, but '{at}/propertyNames' can never be met.");
                return;
            }
            var properties = node.TryGetProperty("properties", out var ps) && ps.ValueKind == JsonValueKind.Object ? ps : default;
            var patterned = node.TryGetProperty("patternProperties", out var patterns) && patterns.ValueKind == JsonValueKind.Object && patterns.EnumerateObject().Any();
            foreach (var name in required)
            {
                JsonElement schema;
                string where;
                if (properties.ValueKind == JsonValueKind.Object && properties.TryGetProperty(name, out var declared))
                    (schema, where) = (declared, $"{at}/properties/{SchemaLimits.Escape(name)}");
                // Whether a pattern names it is not worked out: assumed it might.
                else if (!patterned && node.TryGetProperty("additionalProperties", out var additional))
                    (schema, where) = (additional, $"{at}/additionalProperties");
                else continue;
                var (met, propertyWhy) = Allowed(schema, where, depth + 1);
                if (met == Kinds.None)
                {
                    exclude(Kinds.Object, where.EndsWith("/additionalProperties", StringComparison.Ordinal) && schema.ValueKind == JsonValueKind.False
                        ? $"'{name}' is required at '{at}', but it is not among its 'properties' and 'additionalProperties' is false."
                        : $"'{name}' is required at '{at}', and '{where}' can never be met: {propertyWhy}");
                    return;
                }
            }
        }

        /// <summary>Whether the listed value might meet the subschema's own keywords (those this analysis reads); true when unsure.</summary>
        private static bool MightMeet(JsonElement node, JsonElement value, Kinds kinds)
        {
            if ((KindOf(value) & kinds) == Kinds.None) return false;
            switch (value.ValueKind)
            {
                case JsonValueKind.Number when Exact(value) is { } number:
                    var (low, lowOpen, _) = Bound(node, "minimum", "exclusiveMinimum", lower: true);
                    var (high, highOpen, _) = Bound(node, "maximum", "exclusiveMaximum", lower: false);
                    if (low is { } lo && (number < lo || (lowOpen && number == lo))) return false;
                    if (high is { } hi && (number > hi || (highOpen && number == hi))) return false;
                    return true;
                case JsonValueKind.String:
                    // Lengths are counted in code points or in text elements depending on the validator: only a length
                    // short (or long) by every count decides.
                    var text = value.GetString()!;
                    if (Count(node, "minLength") is { } min && text.Length < min) return false;
                    if (Count(node, "maxLength") is { } max && new StringInfo(text).LengthInTextElements > max) return false;
                    return true;
                case JsonValueKind.Array:
                    var length = value.GetArrayLength();
                    return !(Count(node, "minItems") is { } minItems && length < minItems) && !(Count(node, "maxItems") is { } maxItems && length > maxItems);
                case JsonValueKind.Object:
                    if (node.TryGetProperty("required", out var required) && required.ValueKind == JsonValueKind.Array)
                        foreach (var name in required.EnumerateArray())
                            if (name.ValueKind == JsonValueKind.String && !value.TryGetProperty(name.GetString()!, out _)) return false;
                    var count = value.EnumerateObject().Select(m => m.Name).Distinct(StringComparer.Ordinal).Count();
                    return !(Count(node, "minProperties") is { } minProperties && count < minProperties)
                        && !(Count(node, "maxProperties") is { } maxProperties && count > maxProperties);
                default:
                    return true;
            }
        }

        private bool MetByEverything(JsonElement node) => node.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.Object => node.EnumerateObject().All(m => Annotations.Contains(m.Name)),
            _ => false,
        };

        private static Kinds KindOf(JsonElement value) => value.ValueKind switch
        {
            JsonValueKind.Null => Kinds.Null,
            JsonValueKind.True or JsonValueKind.False => Kinds.Boolean,
            JsonValueKind.String => Kinds.String,
            JsonValueKind.Array => Kinds.Array,
            JsonValueKind.Object => Kinds.Object,
            // Not a decimal exactly (1e400, 1e-30): either, as far as this analysis can tell.
            JsonValueKind.Number => Exact(value) is { } d ? decimal.Truncate(d) == d ? Kinds.Integer : Kinds.Fraction : Kinds.Number,
            _ => Kinds.Any,
        };

        /// <summary>The types a 'type' keyword names; null when it names something else (then it is not relied on).</summary>
        private static Kinds? TypeNamed(JsonElement type)
        {
            if (type.ValueKind == JsonValueKind.String) return Named(type.GetString()!);
            if (type.ValueKind != JsonValueKind.Array) return null;
            var all = Kinds.None;
            foreach (var item in type.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.String || Named(item.GetString()!) is not { } one) return null;
                all |= one;
            }
            return all;

            static Kinds? Named(string name) => name switch
            {
                "null" => Kinds.Null,
                "boolean" => Kinds.Boolean,
                "integer" => Kinds.Integer,
                "number" => Kinds.Number,
                "string" => Kinds.String,
                "array" => Kinds.Array,
                "object" => Kinds.Object,
                _ => null,
            };
        }

        /// <summary>
        /// The number as a decimal when the decimal is exactly it, else null. A decimal holds 28 digits and nothing below
        /// 1e-28, and the reader rounds to it: 1e-30 would be read as 0 and 1.00000000000000000000000000001 as 1, and an
        /// analysis of the rounded bounds would refuse schemas that some value meets.
        /// </summary>
        private static decimal? Exact(JsonElement number)
        {
            if (number.ValueKind != JsonValueKind.Number || !number.TryGetDecimal(out var value)) return null;
            // The text is JSON's number grammar: -?digits(.digits)?([eE][+-]?digits)?, so it is written × 10^exponent.
            var raw = number.GetRawText();
            var e = raw.IndexOfAny(['e', 'E']);
            var mantissa = e < 0 ? raw : raw[..e];
            if (!int.TryParse(e < 0 ? "0" : raw[(e + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var exponent)) return null;
            var point = mantissa.IndexOf('.');
            if (point >= 0) exponent -= mantissa.Length - point - 1;
            var written = BigInteger.Parse(mantissa.Replace("-", "").Replace(".", ""), CultureInfo.InvariantCulture);
            if (written.IsZero) return value == 0 ? value : null;
            // The decimal is unscaled × 10^-scale: equal when written × 10^(exponent + scale) is unscaled.
            var bits = decimal.GetBits(value);
            var unscaled = (new BigInteger((uint)bits[2]) << 64) | (new BigInteger((uint)bits[1]) << 32) | new BigInteger((uint)bits[0]);
            var shift = exponent + value.Scale;
            if (Math.Abs(shift) > 64) return null;
            var same = shift >= 0 ? written * BigInteger.Pow(10, shift) == unscaled : written == unscaled * BigInteger.Pow(10, -shift);
            return same && (value < 0) == raw.StartsWith('-') ? value : null;
        }

        private static long? Count(JsonElement node, string keyword) =>
            node.TryGetProperty(keyword, out var value) && Exact(value) is { } d
                && d >= 0 && d <= long.MaxValue ? (long)decimal.Floor(d) : null;
    }
}
