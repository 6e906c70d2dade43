using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cortensor.Api.Inference;
using JsonSchema = Json.Schema.JsonSchema;
using BuildOptions = Json.Schema.BuildOptions;
using SchemaRegistry = Json.Schema.SchemaRegistry;

namespace Cortensor.Tests.Unit;

/// <summary>
/// A strict schema no answer can meet is a 400 before any router is paid (it was a 502 after every answer, which SDKs
/// retry, each retry charged), and a schema some value meets is never refused: checked against the validator itself on
/// thousands of random schemas.
/// </summary>
public class SchemaContradictionTests
{
    private static (InferenceRequest? Request, Cortensor.Api.Errors.ApiError? Error) Read(Dialect dialect, string json) =>
        dialect.Read(Encoding.UTF8.GetBytes(json));

    private static IEnumerable<(Dialect Dialect, string Json, string? Param)> EveryPlaceOf(string schema) =>
    [
        (Dialect.Chat, """{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","strict":true,"schema":SCHEMA}}}""".Replace("SCHEMA", schema),
            "response_format.json_schema.schema"),
        (Dialect.Chat, """{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","strict":true,"parameters":SCHEMA}}]}""".Replace("SCHEMA", schema),
            "tools[0].function.parameters"),
        (Dialect.Responses, """{"model":"m","input":"hi","text":{"format":{"type":"json_schema","name":"x","strict":true,"schema":SCHEMA}}}""".Replace("SCHEMA", schema), null),
        (Dialect.Responses, """{"model":"m","input":"hi","tools":[{"type":"function","name":"f","strict":true,"parameters":SCHEMA}]}""".Replace("SCHEMA", schema), null),
    ];

    [Theory]
    [InlineData("""{"not":{}}""", "not")]
    [InlineData("""{"type":"object","properties":{"a":{"not":true}},"required":["a"]}""", "'a' is required")]
    [InlineData("""{"type":"object","properties":{"kind":{"type":"string","enum":[]}},"required":["kind"],"additionalProperties":false}""", "enum")]
    [InlineData("""{"type":"object","properties":{"n":{"type":"integer","minimum":10,"maximum":1}},"required":["n"]}""", "'minimum' 10")]
    [InlineData("""{"type":"object","properties":{"n":{"type":"integer","minimum":1.2,"maximum":1.8}},"required":["n"]}""", "no integer")]
    [InlineData("""{"type":"number","exclusiveMinimum":3,"maximum":3}""", "'exclusiveMinimum' 3")]
    [InlineData("""{"type":"number","minimum":2.5e1,"maximum":0.24e2}""", "'minimum' 2.5e1")]
    [InlineData("""{"type":"integer","minimum":0.1000000000000000000000000000000000000,"maximum":0.9}""", "no integer")]
    [InlineData("""{"type":"string","minLength":5,"maxLength":2}""", "'minLength' 5")]
    [InlineData("""{"type":"array","minItems":3,"maxItems":1}""", "'minItems' 3")]
    [InlineData("""{"type":"array","items":{"type":"string","minLength":2,"maxLength":1},"minItems":1}""", "item 0")]
    [InlineData("""{"type":"object","minProperties":3,"maxProperties":1}""", "'minProperties' 3")]
    [InlineData("""{"type":"object","required":["a","b","c"],"maxProperties":2}""", "maxProperties")]
    [InlineData("""{"type":"object","properties":{"a":{"type":"string"}},"required":["a","b"],"additionalProperties":false}""", "'b' is required")]
    [InlineData("""{"allOf":[{"type":"string"},{"type":"number"}]}""", "allOf")]
    [InlineData("""{"type":"object","anyOf":[{"type":"string"},{"type":"array"}]}""", "anyOf")]
    [InlineData("""{"type":[]}""", "empty 'type'")]
    [InlineData("""{"type":"string","enum":[1,2,null]}""", "enum")]
    [InlineData("""{"type":"string","const":"a","minLength":3}""", "const")]
    [InlineData("""{"$defs":{"never":{"enum":[]}},"type":"object","properties":{"a":{"$ref":"#/$defs/never"}},"required":["a"]}""", "#/$defs/never")]
    [InlineData("""{"type":"string","not":{"type":["string","null"]}}""", "not")]
    [InlineData("""{"type":"array","contains":false}""", "contains")]
    [InlineData("""{"type":"object","required":["a"],"propertyNames":{"type":"number"}}""", "propertyNames")]
    [InlineData("""{"type":"object","patternProperties":{},"required":["a"],"additionalProperties":false}""", "'a' is required")]
    [InlineData("""{"type":"array","contains":{"type":"string"},"maxContains":0}""", "a 'contains' (at least 1) is above 'maxContains' 0")]
    public void AStrictSchemaNoValueCanMeetIsA400NamingWhyBeforeAnyRouterIsPaid(string schema, string why)
    {
        foreach (var (dialect, json, param) in EveryPlaceOf(schema))
        {
            var (request, error) = Read(dialect, json);
            Assert.Null(request);
            Assert.Equal((400, "invalid_value"), (error?.Status, error?.Code));
            if (param is not null) Assert.Equal(param, error!.Param);
            Assert.Contains("can never be met", error!.Message, StringComparison.Ordinal);
            Assert.Contains(why, error.Message, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("""{"not":{"type":"string"}}""")]
    [InlineData("""{"type":"integer","minimum":5,"maximum":5}""")]
    [InlineData("""{"type":"number","exclusiveMinimum":1,"exclusiveMaximum":2}""")]
    [InlineData("""{"type":"integer","minimum":0.5,"maximum":1.5,"multipleOf":1}""")]
    [InlineData("""{"type":"object","properties":{"a":{"type":"string"}},"patternProperties":{"^b":{"type":"number"}},"required":["a","b"],"additionalProperties":false}""")]
    [InlineData("""{"type":"object","properties":{"a":false}}""")]
    [InlineData("""{"type":"array","items":false}""")]
    [InlineData("""{"type":"array","items":false,"prefixItems":[{"type":"string"}],"minItems":1}""")]
    [InlineData("""{"anyOf":[{"type":"string","minLength":3,"maxLength":1},{"type":"null"}]}""")]
    [InlineData("""{"type":["string","null"],"enum":["a",null]}""")]
    [InlineData("""{"type":"string","enum":["é"],"maxLength":1}""")]
    [InlineData("""{"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"s":{"type":"string"}},"$ref":"#/definitions/s","type":"number"}""")]
    [InlineData("""{"type":"object","properties":{"next":{"$ref":"#"}}}""")]
    [InlineData("""{"not":{"format":"email"}}""")]
    // Beyond a decimal's 28 digits: read rounded, these would look like 0 and like 1.
    [InlineData("""{"type":"number","minimum":0,"maximum":1e-30,"not":{"type":"integer"}}""")]
    [InlineData("""{"enum":[1e-30],"exclusiveMinimum":0}""")]
    [InlineData("""{"enum":[1e-30],"not":{"type":"integer"}}""")]
    [InlineData("""{"type":"number","minimum":1,"maximum":1.00000000000000000000000000001,"not":{"type":"integer"}}""")]
    [InlineData("""{"const":1.00000000000000000000000000001,"not":{"type":"integer"}}""")]
    // Keywords of a later draft than the schema's own "$schema" are not keywords there.
    [InlineData("""{"$schema":"http://json-schema.org/draft-07/schema#","type":"array","contains":{"type":"string"},"maxContains":0}""")]
    [InlineData("""{"$schema":"http://json-schema.org/draft-07/schema#","type":"array","contains":{"type":"string"},"minContains":3,"maxItems":2}""")]
    [InlineData("""{"$schema":"http://json-schema.org/draft-07/schema#","type":"array","prefixItems":[false],"minItems":1}""")]
    [InlineData("""{"$schema":"https://json-schema.org/draft/2019-09/schema","type":"array","prefixItems":[false],"minItems":1}""")]
    // An "$anchor" in data ('examples', 'const', 'default') names nothing: the reference goes to the subschema's.
    [InlineData("""{"type":"object","properties":{"v":{"type":"object","examples":[{"$anchor":"pos","type":"integer","minimum":5,"maximum":1}]},"n":{"$ref":"#pos"}},"required":["n"],"$defs":{"pos":{"$anchor":"pos","type":"integer","minimum":0}}}""")]
    [InlineData("""{"type":"object","properties":{"v":{"const":{"$anchor":"p","enum":[]}},"w":{"default":{"$anchor":"p","not":{}}},"n":{"$ref":"#p"}},"required":["n"],"$defs":{"p":{"$anchor":"p","type":"integer"}}}""")]
    // Draft-07's 'definitions' and the keywords schema generators add, without a "$schema".
    [InlineData("""{"definitions":{"s":{"type":"string"}},"type":"object","properties":{"a":{"$ref":"#/definitions/s"}},"required":["a"]}""")]
    [InlineData("""{"type":"object","properties":{"kind":{"type":"string","x-order":1}},"discriminator":{"propertyName":"kind"},"required":["kind"]}""")]
    [InlineData("""{"type":"object","properties":{"steps":{"type":"array","items":{"type":"object","properties":{"explanation":{"type":"string"},"output":{"type":"string"}},"required":["explanation","output"],"additionalProperties":false}},"final_answer":{"type":"string"}},"required":["steps","final_answer"],"additionalProperties":false}""")]
    public void AStrictSchemaSomeValueMeetsIsAccepted(string schema)
    {
        foreach (var (dialect, json, _) in EveryPlaceOf(schema))
        {
            var (_, error) = Read(dialect, json);
            Assert.Null(error);
        }
    }

    [Fact]
    public void AConstOrEnumNumberBeyondWhatAnswersAreComparedWithIsA400AndAnAnswersIsAnInvalidOutput()
    {
        foreach (var schema in new[] { """{"type":"integer","const":1e30}""", """{"enum":[1e400,1]}""", """{"type":"object","properties":{"a":{"const":{"b":[1e300]}}}}""" })
            foreach (var (dialect, json, _) in EveryPlaceOf(schema))
            {
                var (request, error) = Read(dialect, json);
                Assert.Null(request);
                Assert.Equal((400, "invalid_value"), (error?.Status, error?.Code));
                Assert.Contains("28 digits", error!.Message, StringComparison.Ordinal);
            }

        // The model's number is compared with the schema's as a decimal too: 1e400 was a 500 after the router was paid.
        var (strict, _) = Read(Dialect.Chat, EveryPlaceOf("""{"type":"object","properties":{"n":{"enum":[1,2]}},"required":["n"]}""").First().Json);
        var answer = ModelOutput.Interpret("qwen", """{"n":1e400}""", strict!, AnswerCut.None);
        Assert.Equal("invalid_model_output", answer.Error?.Code);
        Assert.Contains("too large to compare", answer.Error!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ANonStrictSchemaIsNotCheckedForContradictions()
    {
        var (_, error) = Read(Dialect.Chat,
            """{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"not":{}}}}}""");
        Assert.Null(error);
    }

    /// <summary>
    /// The analysis is one-sided: every random schema it calls unmeetable is checked by the validator against a pool of
    /// values built from the same small constants the schemas use, and none may pass. A failure prints the schema and
    /// the value that meets it.
    /// </summary>
    [Fact]
    public void NoRandomSchemaCalledUnmeetableIsMetByAnyValueTheValidatorAccepts()
    {
        var pool = ValuePool();
        var refused = 0;
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.For(0, 2_000, seed =>
        {
            var text = RandomSchema(new Random(seed), 0)?.ToJsonString() ?? "null";
            using var document = JsonDocument.Parse(text);
            if (SchemaContradictions.Find(document.RootElement) is null) return;
            Interlocked.Increment(ref refused);
            var compiled = JsonSchema.Build(document.RootElement, new BuildOptions { SchemaRegistry = new SchemaRegistry(), Dialect = Json.Schema.Dialect.Draft202012 }, null!);
            // Only values of the root's type can meet it (as JSON Schema defines 'type'; this is not the analysis's code).
            var typed = document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String
                ? pool.Where(value => OfType(value, t.GetString()!)) : pool;
            if (typed.FirstOrDefault(value => compiled.Evaluate(value).IsValid) is { ValueKind: not JsonValueKind.Undefined } witness)
                failures.Add($"seed {seed}: {text} was called unmeetable, but {witness.GetRawText()} meets it.");
        });
        Assert.Empty(failures);
        // The generator is built to make contradictions often: a run that finds few would prove little.
        Assert.InRange(refused, 300, 2_000);
    }

    private static bool OfType(JsonElement value, string type) => type switch
    {
        "null" => value.ValueKind == JsonValueKind.Null,
        "boolean" => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
        "number" => value.ValueKind == JsonValueKind.Number,
        "integer" => value.ValueKind == JsonValueKind.Number && value.GetDouble() == Math.Floor(value.GetDouble()),
        "string" => value.ValueKind == JsonValueKind.String,
        "array" => value.ValueKind == JsonValueKind.Array,
        "object" => value.ValueKind == JsonValueKind.Object,
        _ => true,
    };

    private static readonly string[] Types = ["null", "boolean", "integer", "number", "string", "array", "object"];
    private static readonly double[] Numbers = [-1, 0, 0.5, 1, 2];
    private static readonly string[] Names = ["a", "b", "c"];

    private static JsonNode? RandomSchema(Random random, int depth)
    {
        if (random.Next(12) == 0) return JsonValue.Create(random.Next(4) != 0);
        var schema = new JsonObject();
        // Mostly typed, as real schemas are: the type is what most contradictions are about.
        if (random.Next(5) < 2) schema["type"] = Types[random.Next(Types.Length)];
        var groups = random.Next(1, depth >= 2 ? 3 : 4);
        for (var g = 0; g < groups; g++)
        {
            var group = random.Next(depth >= 2 ? 6 : 10);
            // Mostly of the type a group's keywords are about, so that they decide whether the schema can be met.
            if (!schema.ContainsKey("type") && random.Next(4) != 0 && group switch { 1 => random.Next(2) == 0 ? "integer" : "number", 2 => "string", 4 => "array", 5 => "object", _ => null } is { } implied)
                schema["type"] = implied;
            switch (group)
            {
                case 0:
                    schema["type"] = random.Next(4) == 0
                        ? new JsonArray([.. Enumerable.Range(0, random.Next(0, 3)).Select(_ => (JsonNode?)Types[random.Next(Types.Length)]).DistinctBy(n => n!.ToString())])
                        : Types[random.Next(Types.Length)];
                    break;
                case 1:
                    foreach (var keyword in new[] { "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf" })
                        if (random.Next(2) == 0) schema[keyword] = keyword == "multipleOf" ? new[] { 0.5, 1, 2 }[random.Next(3)] : Numbers[random.Next(Numbers.Length)];
                    break;
                case 2:
                    if (random.Next(2) == 0) schema["minLength"] = random.Next(0, 4);
                    if (random.Next(2) == 0) schema["maxLength"] = random.Next(0, 4);
                    break;
                case 3:
                    var values = Enumerable.Range(0, random.Next(0, 4)).Select(_ => RandomValue(random)).ToArray();
                    if (random.Next(3) == 0 && values.Length > 0) schema["const"] = values[0];
                    else schema["enum"] = new JsonArray(values);
                    break;
                case 4:
                    if (random.Next(2) == 0) schema["minItems"] = random.Next(0, 3);
                    if (random.Next(2) == 0) schema["maxItems"] = random.Next(0, 3);
                    if (random.Next(2) == 0) schema["items"] = RandomSchema(random, depth + 1);
                    if (random.Next(4) == 0) schema["prefixItems"] = new JsonArray(RandomSchema(random, depth + 1));
                    if (random.Next(4) == 0)
                    {
                        schema["contains"] = RandomSchema(random, depth + 1);
                        if (random.Next(2) == 0) schema["minContains"] = random.Next(0, 3);
                        if (random.Next(2) == 0) schema["maxContains"] = random.Next(0, 3);
                    }
                    break;
                case 5:
                    var properties = new JsonObject();
                    foreach (var name in Names.Take(2)) if (random.Next(2) == 0) properties[name] = RandomSchema(random, depth + 1);
                    schema["properties"] = properties;
                    schema["required"] = new JsonArray([.. Names.Where(_ => random.Next(2) == 0).Select(n => (JsonNode?)n)]);
                    if (random.Next(2) == 0) schema["additionalProperties"] = random.Next(2) == 0 ? false : RandomSchema(random, depth + 1);
                    if (random.Next(3) == 0) schema["patternProperties"] = new JsonObject { ["^c"] = RandomSchema(random, depth + 1) };
                    if (random.Next(4) == 0) schema["minProperties"] = random.Next(0, 4);
                    if (random.Next(4) == 0) schema["maxProperties"] = random.Next(0, 4);
                    if (random.Next(6) == 0) schema["propertyNames"] = RandomSchema(random, depth + 1);
                    break;
                case 6 or 7:
                    var applicator = new[] { "allOf", "anyOf", "oneOf" }[random.Next(3)];
                    schema[applicator] = new JsonArray([.. Enumerable.Range(0, random.Next(1, 4)).Select(_ => RandomSchema(random, depth + 1))]);
                    break;
                case 9 when depth == 0:
                    // Only at the root: a nested '#/$defs/d' would be the root's, a cycle the validator refuses.
                    schema["$defs"] = new JsonObject { ["d"] = RandomSchema(random, depth + 1) };
                    schema["$ref"] = "#/$defs/d";
                    break;
                default:
                    schema["not"] = RandomSchema(random, depth + 1);
                    break;
            }
        }
        return schema;
    }

    private static JsonNode? RandomValue(Random random) => random.Next(7) switch
    {
        0 => null,
        1 => random.Next(2) == 0,
        2 or 3 => Numbers[random.Next(Numbers.Length)],
        4 or 5 => new[] { "", "a", "ab", "abc", "é" }[random.Next(5)],
        _ => random.Next(2) == 0 ? new JsonArray() : new JsonObject { ["a"] = 1 },
    };

    /// <summary>Every value the generator's schemas could need as a witness: scalars at their constants, short arrays and objects of them.</summary>
    private static readonly string[] Others = ["null", "true", "1", "0.5", "\"a\"", "\"\"", "[]"];

    private static List<JsonElement> ValuePool()
    {
        var scalars = new List<string> { "null", "true", "false", "\"\"", "\"a\"", "\"ab\"", "\"abc\"", "\"abcd\"", "\"é\"", "\"c\"" };
        scalars.AddRange(new[] { -2, -1, -0.5, 0, 0.25, 0.5, 1, 1.5, 2, 2.5, 3, 4, 6 }.Select(n => n.ToString(CultureInfo.InvariantCulture)));
        var small = new List<string>(scalars) { "[]", "{}", """{"a":1}""", "[1]", "[\"a\"]" };
        var texts = new List<string>(small);
        // Arrays of up to three items; objects of a, b, c and one other name.
        foreach (var x in small)
        {
            texts.Add($"[{x}]");
            foreach (var y in scalars.Take(8)) texts.Add($"[{x},{y}]");
            foreach (var y in scalars.Take(4)) texts.Add($"[{x},{y},{x}]");
        }
        var keys = new[] { "a", "b", "c", "d" };
        for (var mask = 1; mask < 16; mask++)
        {
            var chosen = keys.Where((_, i) => (mask & (1 << i)) != 0).ToArray();
            foreach (var x in small)
                foreach (var y in chosen.Length > 1 ? Others : ["null"])
                    texts.Add("{" + string.Join(",", chosen.Select((k, i) => $"\"{k}\":{(i == 0 ? x : y)}")) + "}");
        }
        return [.. texts.Distinct().Select(t => JsonDocument.Parse(t).RootElement)];
    }
}
