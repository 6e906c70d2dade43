using System.Buffers;
using System.Text.Json;
using System.Text.Unicode;

namespace Cortensor.Api.Infrastructure;

/// <summary>Whether the strings of a JSON body can become text: what would go wrong with one, if anything.</summary>
public enum JsonTextProblem
{
    None,
    /// <summary>Bytes that are not UTF-8, or an escape that is half a surrogate pair (<c>\ud800</c>): not text at all.</summary>
    NotUnicode,
    /// <summary>A <c>\u0000</c> in a string: text, but Postgres cannot store it.</summary>
    Nul,
}

/// <summary>
/// One check of a JSON body's strings before anything reads them, for the inference reader and the control plane alike.
/// The common body costs one vectorised UTF-8 check and a search or two; only a body that holds an escape which could be
/// a problem (<c>\uD…</c>, or <c>\u0000</c> where NUL is refused) has its escaped strings unescaped by the JSON reader.
/// </summary>
public static class JsonText
{
    /// <summary>
    /// The body without a leading UTF-8 byte order mark: RFC 8259 lets a parser ignore one, and the framework's reader
    /// always did, so clients that send one keep working wherever a body is read by hand.
    /// </summary>
    public static ReadOnlySpan<byte> WithoutByteOrderMark(ReadOnlySpan<byte> body) => body.StartsWith("\uFEFF"u8) ? body[3..] : body;

    /// <summary>
    /// What is wrong with a body that is not JSON ("check the syntax near line 1, byte 27."), or null when it is well-formed. Only asked once reading a body
    /// has failed: a cut-off or misspelt body is then told apart from a field of the wrong type, which the serializer's one
    /// exception does not (a body cut inside a message was reported as that message's content being malformed).
    /// </summary>
    public static string? SyntaxError(ReadOnlySpan<byte> body, JsonReaderOptions options)
    {
        var reader = new Utf8JsonReader(body, options);
        try
        {
            if (!reader.Read()) return "it is empty.";
            reader.Skip();
            // One value only: the reader throws at anything after it but whitespace.
            reader.Read();
            return null;
        }
        catch (JsonException ex)
        {
            return $"check the syntax near line {(ex.LineNumber ?? 0) + 1}, byte {(ex.BytePositionInLine ?? 0) + 1}.";
        }
    }


    public static JsonTextProblem Check(ReadOnlySpan<byte> body, JsonReaderOptions options, bool refuseNul)
    {
        if (!Utf8.IsValid(body)) return JsonTextProblem.NotUnicode;
        var surrogates = body.IndexOf("\\ud"u8) >= 0 || body.IndexOf("\\uD"u8) >= 0;
        var nul = refuseNul && body.IndexOf("\\u0000"u8) >= 0;
        if (!surrogates && !nul) return JsonTextProblem.None;
        var reader = new Utf8JsonReader(body, options);
        char[]? rented = null;
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.PropertyName) || !reader.ValueIsEscaped) continue;
                // Unescaped, a string never has more characters than its escaped bytes.
                if (rented is null || rented.Length < reader.ValueSpan.Length)
                {
                    if (rented is not null) ArrayPool<char>.Shared.Return(rented);
                    rented = ArrayPool<char>.Shared.Rent(reader.ValueSpan.Length);
                }
                var length = reader.CopyString(rented);
                // Unescaping tells a NUL from the six characters "\u0000" written with an escaped backslash.
                if (nul && rented.AsSpan(0, length).Contains('\0')) return JsonTextProblem.Nul;
            }
            return JsonTextProblem.None;
        }
        catch (InvalidOperationException)
        {
            return JsonTextProblem.NotUnicode; // the reader's word for an escape that is not UTF-16: an unpaired surrogate
        }
        catch (JsonException)
        {
            return JsonTextProblem.None; // not JSON at all: the serializer names what is wrong with it
        }
        finally
        {
            if (rented is not null) ArrayPool<char>.Shared.Return(rented);
        }
    }
}
