using System.Buffers;
using System.Text;

namespace Cortensor.Api.Metering;

/// <summary>
/// The one place that decides what text may reach the ledger. Anything a client or a router sent can end up
/// in a usage record; Postgres refuses NUL and invalid UTF-16 and a refused record used to block every
/// record behind it, so values are made storable before they are buffered, and again before they are written.
/// </summary>
public static class LedgerText
{
    // Every request's record passes these checks; SearchValues looks at many characters at a time.
    private static readonly SearchValues<char> IdentifierChars =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:/");
    private static readonly SearchValues<char> NulOrSurrogate =
        SearchValues.Create("\0" + string.Concat(Enumerable.Range(0xD800, 0x800).Select(c => (char)c)));

    /// <summary>
    /// An identifier (request, event, model, pool, router, error code, HTTP method): ASCII letters, digits and
    /// <c>- _ . : /</c>, at most <paramref name="maxLength"/> characters. Anything else becomes '_', so the
    /// result is deterministic: the same input always maps to the same stored id.
    /// </summary>
    public static string Identifier(string? value, int maxLength)
    {
        if (string.IsNullOrEmpty(value)) return "";
        if (value.Length <= maxLength && IsIdentifier(value)) return value;
        var length = Math.Min(value.Length, maxLength);
        return string.Create(length, value, static (span, source) =>
        {
            for (var i = 0; i < span.Length; i++)
                span[i] = IsIdentifierChar(source[i]) ? source[i] : '_';
        });
    }

    public static string? OptionalIdentifier(string? value, int maxLength) => value is null ? null : Identifier(value, maxLength);

    public static bool IsIdentifier(string value) => !value.AsSpan().ContainsAnyExcept(IdentifierChars);

    /// <summary>Free text: NUL and lone surrogates removed, cut to <paramref name="maxLength"/> without splitting a pair.</summary>
    public static string Text(string? value, int maxLength)
    {
        if (string.IsNullOrEmpty(value)) return "";
        if (value.Length <= maxLength && IsClean(value)) return value;
        var text = new StringBuilder(Math.Min(value.Length, maxLength));
        for (var i = 0; i < value.Length && text.Length < maxLength; i++)
        {
            var c = value[i];
            if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                if (text.Length + 2 > maxLength) break;
                text.Append(c).Append(value[++i]);
            }
            else if (c != '\0' && !char.IsSurrogate(c))
            {
                text.Append(c);
            }
        }
        return text.ToString();
    }

    private static bool IsClean(string value)
    {
        var first = value.AsSpan().IndexOfAny(NulOrSurrogate);
        if (first < 0) return true;
        for (var i = first; i < value.Length; i++)
        {
            var c = value[i];
            if (c == '\0') return false;
            if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1])) i++;
            else if (char.IsSurrogate(c)) return false;
        }
        return true;
    }

    private static bool IsIdentifierChar(char c) => IdentifierChars.Contains(c);
}
