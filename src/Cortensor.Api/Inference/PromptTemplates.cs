using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Cortensor.Contracts;

namespace Cortensor.Api.Inference;

/// <summary>
/// Chat messages to the single prompt string a router session takes, per model family.
/// The templates are documented for customers in docs/api.md ("Prompt templates").
/// </summary>
public static class PromptTemplates
{
    /// <summary>
    /// U+200D ZERO WIDTH JOINER, put right after the '&lt;' of a control token found in message content.
    /// Tokenizers match special tokens as exact strings, so "&lt;\u200D|start|&gt;" is plain text to the model;
    /// unlike a lookalike character (e.g. a full-width '＜') it survives NFKC normalisation unchanged, and
    /// it is invisible when the model quotes the text back.
    /// </summary>
    public const char Neutraliser = '\u200D';

    /// <summary>
    /// Gemma's control tokens. Harmony and ChatML write every control token as &lt;|name|&gt;, so for them
    /// every "&lt;|" is broken (that also covers reserved and tool tokens not listed here).
    /// </summary>
    private static readonly string[] GemmaTokens =
        ["<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>", "<unk>", "<mask>", "<start_of_image>", "<end_of_image>"];

    public static string Render(string family, IReadOnlyList<PromptMessage> messages, DateOnly? today = null) => Render(family, messages, null, null, today);

    /// <summary>The request's messages with its tools and response format, in the family's own conventions (docs/api.md, "Tools and structured output").</summary>
    public static string Render(string family, InferenceRequest request, DateOnly? today = null) =>
        Render(family, request.Messages, request.Tools, request.Format, today);

    /// <param name="today">The date a gpt-oss prompt's system message gives the model (today, UTC, unless a test fixes it).</param>
    public static string Render(string family, IReadOnlyList<PromptMessage> messages, ToolSet? tools, OutputFormat? format, DateOnly? today = null)
    {
        // tool_choice none: the model is not shown the tools (earlier calls and results still are).
        var shown = tools is { Active: true } ? tools : null;
        return family switch
        {
            "gpt-oss" => Harmony(messages, shown, format, today ?? DateOnly.FromDateTime(DateTime.UtcNow)),
            "gemma" => Gemma(messages, shown, format),
            _ => ChatMl(messages, shown, format),
        };
    }

    /// <summary>Message content as inert text for <paramref name="family"/>: no control token of that family survives.</summary>
    public static string Neutralise(string family, string content)
    {
        if (family == "gemma")
        {
            if (!content.Contains('<')) return content;
            foreach (var token in GemmaTokens)
                content = content.Replace(token, token.Insert(1, Neutraliser.ToString()), StringComparison.Ordinal);
            return content;
        }
        return content.Contains("<|", StringComparison.Ordinal) ? content.Replace("<|", $"<{Neutraliser}|", StringComparison.Ordinal) : content;
    }

    /// <summary>
    /// The gpt-oss "harmony" format, after gpt-oss's own chat template (the template Ollama and llama.cpp apply when the
    /// prompt is not raw; the Portal sends raw prompts, so it renders it itself). The template's system message opens every
    /// prompt: the model's identity, knowledge cutoff, today's date, the reasoning effort and the channels it must write
    /// in, which the model was trained to be given. The customer's leading system and developer messages are the developer
    /// message's "# Instructions" (harmony's system role is not theirs), followed by the tools as a TypeScript-like
    /// <c>namespace functions</c> and a response format as "# Response Formats". Earlier answers are on the final channel;
    /// a call is <c>&lt;|channel|&gt;commentary to=functions.name &lt;|constrain|&gt;json&lt;|message|&gt;{…}&lt;|call|&gt;</c>
    /// and its result comes back from <c>functions.name to=assistant</c>. Where the template has nothing to say, the
    /// Portal keeps what the customer sent: every leading instruction (the template reads the first), later ones as
    /// developer messages (the template drops them), and a response format (the template has none).
    /// </summary>
    private static string Harmony(IReadOnlyList<PromptMessage> messages, ToolSet? tools, OutputFormat? format, DateOnly today)
    {
        var prompt = new PromptText(messages.Count * 5 + 6);
        prompt.Append(HarmonySystem(today, tools is not null));
        var i = 0;
        var dev = new StringBuilder();
        for (; i < messages.Count && messages[i].Role is "system" or "developer"; i++)
            if (messages[i].Content.Length > 0) (dev.Length == 0 ? dev.Append("# Instructions\n\n") : dev.Append("\n\n")).Append(messages[i].Content);
        if (Instruction(tools) is { } instruction) (dev.Length == 0 ? dev.Append("# Instructions\n\n") : dev.Append("\n\n")).Append(instruction);
        // The template ends its instructions with a blank line, whatever follows.
        if (dev.Length > 0) dev.Append("\n\n");
        if (tools is not null)
        {
            dev.Append("# Tools\n\n## functions\n\nnamespace functions {\n\n");
            foreach (var t in tools.Tools)
            {
                if (t.Description is { Length: > 0 } d) dev.Append("// ").Append(d.ReplaceLineEndings(" ")).Append('\n');
                dev.Append("type ").Append(t.Name).Append(" = ");
                if (t.Parameters.TryGetProperty("properties", out var props) && props.ValueKind == JsonValueKind.Object && props.EnumerateObject().Any())
                    dev.Append("(_: ").Append(TypeScript.Of(t.Parameters)).Append(") => any;\n\n");
                else
                    dev.Append("() => any;\n\n");
            }
            dev.Append("} // namespace functions");
        }
        if (format is not null)
        {
            if (tools is not null) dev.Append("\n\n");
            dev.Append("# Response Formats\n\n## ").Append(format.Name).Append("\n\n");
            if (format.Description is { Length: > 0 } d) dev.Append("// ").Append(d.ReplaceLineEndings(" ")).Append('\n');
            dev.Append(SchemaText(format));
        }
        if (dev.Length > 0) prompt.Append("<|start|>developer<|message|>").Append(Neutralise("gpt-oss", dev.ToString())).Append("<|end|>");

        // What the model thought before a call is shown to it only until it has answered since, as the template does.
        var lastAnswer = -1;
        for (var m = messages.Count - 1; m >= i && lastAnswer < 0; m--)
            if (messages[m].Role == "assistant" && messages[m].ToolCalls is not { Count: > 0 }) lastAnswer = m;
        for (; i < messages.Count; i++) HarmonyMessage(prompt, messages[i], thoughtShown: i > lastAnswer);
        return prompt.Append("<|start|>assistant").ToString();
    }

    /// <summary>
    /// The template's system message. The effort is the template's default: the Portal offers no per-request effort
    /// (<c>reasoning_effort</c> is refused). Made once per day and per tool use, so a request only looks it up.
    /// </summary>
    private static string HarmonySystem(DateOnly today, bool tools)
    {
        // One reference, replaced whole: a request reads a day's two headers together or not at all.
        var cached = _harmonySystem;
        if (cached?.Day != today) _harmonySystem = cached = new HarmonyHeaders(today, Header(today, false), Header(today, true));
        return tools ? cached.WithTools : cached.Plain;

        static string Header(DateOnly day, bool tools)
        {
            var text = "You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\n" +
                $"Current date: {day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)}\n\nReasoning: medium\n\n" +
                "# Valid channels: analysis, commentary, final. Channel must be included for every message." +
                (tools ? "\nCalls to these tools must go to the commentary channel: 'functions'." : "");
            // The same words in every prompt of the day: counted once, not with every request.
            ModelTokenizer.GptOss.Know(text);
            return "<|start|>system<|message|>" + text + "<|end|>";
        }
    }

    private static HarmonyHeaders? _harmonySystem;

    private sealed record HarmonyHeaders(DateOnly Day, string Plain, string WithTools);

    private static void HarmonyMessage(PromptText prompt, PromptMessage m, bool thoughtShown)
    {
        switch (m.Role)
        {
            case "tool":
                prompt.Append("<|start|>functions.").Append(m.Name).Append(" to=assistant<|channel|>commentary<|message|>")
                    .Append(Neutralise("gpt-oss", m.Content)).Append("<|end|>");
                return;
            case "assistant" when m.ToolCalls is { Count: > 0 } calls:
                // Text beside a call is what the model thought before making it, as the template renders it.
                if (thoughtShown && m.Content.Length > 0) prompt.Append("<|start|>assistant<|channel|>analysis<|message|>").Append(Neutralise("gpt-oss", m.Content)).Append("<|end|>");
                foreach (var c in calls)
                    prompt.Append("<|start|>assistant<|channel|>commentary to=functions.").Append(c.Name).Append(" <|constrain|>json<|message|>")
                        .Append(Neutralise("gpt-oss", c.Arguments)).Append("<|call|>");
                return;
            case "assistant":
                prompt.Append("<|start|>assistant<|channel|>final<|message|>").Append(Neutralise("gpt-oss", m.Content)).Append("<|end|>");
                return;
            case "system" or "developer":
                // Past the first turns: the customer's instructions again, never harmony's own system role; none when empty.
                if (m.Content.Length > 0) prompt.Append("<|start|>developer<|message|>").Append(Neutralise("gpt-oss", m.Content)).Append("<|end|>");
                return;
            default:
                prompt.Append("<|start|>").Append(m.Role).Append("<|message|>").Append(Neutralise("gpt-oss", m.Content)).Append("<|end|>");
                return;
        }
    }

    /// <summary>
    /// A prompt's pieces, joined once at the end. A StringBuilder would copy a long conversation twice (into its chunks, then
    /// into the string); the pieces here are the messages' own strings, so the prompt is copied once, into a string of its
    /// exact length (a 33,000-character conversation: 66 KB allocated instead of 132 KB).
    /// </summary>
    private sealed class PromptText(int pieces)
    {
        private readonly List<string?> _pieces = new(pieces);

        public PromptText Append(string? piece)
        {
            _pieces.Add(piece);
            return this;
        }

        public override string ToString() => string.Concat(CollectionsMarshal.AsSpan(_pieces));
    }

    /// <summary>
    /// Gemma has user and model turns only: system and developer text leads the first user turn. Gemma has no tool
    /// tokens; its documented function-calling prompt lists the functions as JSON and asks for a call as
    /// <c>{"name": …, "parameters": {…}}</c> with no other text; results come back in a <c>```tool_output</c> block.
    /// </summary>
    private static string Gemma(IReadOnlyList<PromptMessage> messages, ToolSet? tools, OutputFormat? format)
    {
        var sb = new StringBuilder();
        var preamble = new StringBuilder();
        if (tools is not null)
        {
            preamble.Append(GemmaToolsIntro).Append('[');
            for (var t = 0; t < tools.Tools.Count; t++)
            {
                if (t > 0) preamble.Append(",\n");
                preamble.Append(Neutralise("gemma", FunctionJson(tools.Tools[t], wrapped: false)));
            }
            preamble.Append("]\n\n");
            if (Instruction(tools) is { } instruction) preamble.Append(instruction).Append("\n\n");
        }
        if (format is not null) preamble.Append(Neutralise("gemma", FormatInstruction(format))).Append("\n\n");

        for (var i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            var content = Neutralise("gemma", m.Content);
            switch (m.Role)
            {
                case "system" or "developer":
                    preamble.Append(content).Append("\n\n");
                    break;
                case "assistant":
                    sb.Append("<start_of_turn>model\n").Append(content);
                    if (m.ToolCalls is { Count: > 0 } calls)
                    {
                        if (content.Length > 0) sb.Append('\n');
                        if (calls.Count > 1) sb.Append('[');
                        for (var c = 0; c < calls.Count; c++)
                        {
                            if (c > 0) sb.Append(", ");
                            sb.Append("{\"name\": \"").Append(calls[c].Name).Append("\", \"parameters\": ").Append(Neutralise("gemma", calls[c].Arguments)).Append('}');
                        }
                        if (calls.Count > 1) sb.Append(']');
                    }
                    sb.Append("<end_of_turn>\n");
                    break;
                case "tool":
                    // Consecutive results share one user turn.
                    sb.Append("<start_of_turn>user\n").Append(preamble);
                    preamble.Clear();
                    for (; ; i++)
                    {
                        sb.Append("```tool_output\n").Append(Neutralise("gemma", messages[i].Content)).Append("\n```");
                        if (i + 1 >= messages.Count || messages[i + 1].Role != "tool") break;
                        sb.Append('\n');
                    }
                    sb.Append("<end_of_turn>\n");
                    break;
                default:
                    sb.Append("<start_of_turn>user\n").Append(preamble).Append(content).Append("<end_of_turn>\n");
                    preamble.Clear();
                    break;
            }
        }
        if (preamble.Length > 0) sb.Append("<start_of_turn>user\n").Append(preamble.ToString().TrimEnd()).Append("<end_of_turn>\n");
        return sb.Append("<start_of_turn>model\n").ToString();
    }

    private const string GemmaToolsIntro =
        "You have access to functions. If you decide to invoke any of the function(s),\nyou MUST put it in the format of\n" +
        "{\"name\": function name, \"parameters\": dictionary of argument name and its value}\n\n" +
        "You SHOULD NOT include any other text in the response if you call a function\n";

    /// <summary>
    /// ChatML (Qwen and the default); developer is sent as system. Tools follow Qwen's (Hermes-style) template: the
    /// function signatures as JSON inside <c>&lt;tools&gt;</c> in the system message, calls as
    /// <c>&lt;tool_call&gt;{"name": …, "arguments": {…}}&lt;/tool_call&gt;</c>, results as <c>&lt;tool_response&gt;</c> in a user turn.
    /// </summary>
    private static string ChatMl(IReadOnlyList<PromptMessage> messages, ToolSet? tools, OutputFormat? format)
    {
        var sb = new StringBuilder();
        var i = 0;
        if (tools is not null || format is not null)
        {
            sb.Append("<|im_start|>system\n");
            var rest = new StringBuilder();
            if (messages.Count > 0 && messages[0].Role is "system" or "developer")
            {
                sb.Append(Neutralise("chatml", messages[0].Content)).Append("\n\n");
                i = 1;
            }
            if (tools is not null)
            {
                rest.Append("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n")
                    .Append("You are provided with function signatures within <tools></tools> XML tags:\n<tools>");
                foreach (var t in tools.Tools) rest.Append('\n').Append(FunctionJson(t, wrapped: true));
                rest.Append("\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n")
                    .Append("<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>");
                if (Instruction(tools) is { } instruction) rest.Append("\n\n").Append(instruction);
            }
            if (format is not null)
            {
                if (rest.Length > 0) rest.Append("\n\n");
                rest.Append(FormatInstruction(format));
            }
            sb.Append(Neutralise("chatml", rest.ToString())).Append("<|im_end|>\n");
        }
        for (; i < messages.Count; i++)
        {
            var m = messages[i];
            if (m.Role == "tool")
            {
                sb.Append("<|im_start|>user");
                for (; ; i++)
                {
                    sb.Append("\n<tool_response>\n").Append(Neutralise("chatml", messages[i].Content)).Append("\n</tool_response>");
                    if (i + 1 >= messages.Count || messages[i + 1].Role != "tool") break;
                }
                sb.Append("<|im_end|>\n");
                continue;
            }
            sb.Append("<|im_start|>").Append(m.Role == "developer" ? "system" : m.Role).Append('\n').Append(Neutralise("chatml", m.Content));
            if (m.ToolCalls is { Count: > 0 } calls)
                foreach (var c in calls)
                {
                    if (sb[^1] != '\n') sb.Append('\n');
                    sb.Append("<tool_call>\n{\"name\": \"").Append(c.Name).Append("\", \"arguments\": ").Append(Neutralise("chatml", c.Arguments)).Append("}\n</tool_call>");
                }
            sb.Append("<|im_end|>\n");
        }
        return sb.Append("<|im_start|>assistant\n").ToString();
    }

    /// <summary>What tool_choice asks, as an instruction (auto needs none).</summary>
    private static string? Instruction(ToolSet? tools) => tools?.Choice switch
    {
        ToolChoiceMode.Required => "You must call at least one of the functions.",
        ToolChoiceMode.Named => $"You must call the function '{tools.Named}'.",
        _ => null,
    };

    /// <summary>json_object is the schema {"type": "object"}, so every family states one rule.</summary>
    internal static string SchemaText(OutputFormat format) => format.Kind == OutputKind.JsonObject ? """{"type":"object"}""" : format.Schema.GetRawText();

    internal const string FormatLead = "Respond only with a JSON document, and no other text, that conforms to this JSON schema:\n";

    private static string FormatInstruction(OutputFormat format) =>
        (format.Description is { Length: > 0 } d ? d.ReplaceLineEndings(" ") + "\n" : "") + FormatLead + SchemaText(format);

    /// <summary>{"name", "description", "parameters"}, or wrapped as {"type": "function", "function": {…}} (Qwen's form).</summary>
    private static string FunctionJson(ToolSpec tool, bool wrapped)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            if (wrapped)
            {
                json.WriteStartObject();
                json.WriteString("type", "function");
                json.WritePropertyName("function");
            }
            json.WriteStartObject();
            json.WriteString("name", tool.Name);
            if (tool.Description is not null) json.WriteString("description", tool.Description);
            json.WritePropertyName("parameters");
            tool.Parameters.WriteTo(json);
            json.WriteEndObject();
            if (wrapped) json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
