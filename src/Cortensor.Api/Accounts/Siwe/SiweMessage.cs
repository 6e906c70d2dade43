using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Nethereum.Util;

namespace Cortensor.Api.Accounts.Siwe;

/// <summary>
/// A Sign-In with Ethereum message (EIP-4361 / ERC-4361), parsed strictly by the specification's ABNF.
/// Hand-written because Nethereum's own SIWE package (Nethereum.Siwe) is not served by our package feed and no
/// other maintained .NET parser exists; the grammar is small (fixed lines in a fixed order) and every rule it
/// uses from RFC 3986 and RFC 3339 is checked below, character by character, before .NET parses the value.
/// </summary>
public sealed partial record SiweMessage(
    string? Scheme, string Domain, string Address, string? Statement, string Uri, string Version, long ChainId, string Nonce,
    DateTimeOffset IssuedAt, DateTimeOffset? ExpirationTime, DateTimeOffset? NotBefore, string? RequestId, IReadOnlyList<string> Resources)
{
    public const string Preamble = " wants you to sign in with your Ethereum account:";

    /// <summary>The message's fields, or a <see cref="SiweFormatException"/> naming the first rule it breaks.</summary>
    public static SiweMessage Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        // LF is the only line break of the grammar: a CR stays in its line and fails that field's rule.
        var lines = text.Split('\n');
        var at = 0;
        string Next(string field) => at < lines.Length ? lines[at++] : throw new SiweFormatException(field, $"The message ends before its '{field}' line.");

        var first = Next("domain");
        if (!first.EndsWith(Preamble, StringComparison.Ordinal))
            throw new SiweFormatException("domain", $"The first line must be '<domain>{Preamble}'.");
        var origin = first[..^Preamble.Length];
        string? scheme = null;
        var separator = origin.IndexOf("://", StringComparison.Ordinal);
        if (separator >= 0)
        {
            scheme = origin[..separator];
            if (!SchemeRule().IsMatch(scheme)) throw new SiweFormatException("scheme", "The scheme before the domain is not an RFC 3986 scheme.");
            origin = origin[(separator + 3)..];
        }
        if (!IsAuthority(origin)) throw new SiweFormatException("domain", "The domain is not an RFC 3986 authority ([userinfo@]host[:port]).");

        var address = Next("address");
        if (!AddressRule().IsMatch(address)) throw new SiweFormatException("address", "The address must be '0x' and 40 hexadecimal digits.");
        if (!AddressUtil.Current.IsChecksumAddress(address))
            throw new SiweFormatException("address", "The address is not in its EIP-55 checksum (mixed-case) form.");

        Blank(Next("statement"), "statement");
        string? statement = null;
        var line = Next("uri");
        if (line.Length > 0)
        {
            if (!StatementRule().IsMatch(line))
                throw new SiweFormatException("statement", "The statement may hold only printable ASCII letters, digits, spaces and RFC 3986 reserved or unreserved characters, on one line.");
            statement = line;
            Blank(Next("uri"), "statement");
        }

        var uri = Field(Next("uri"), "URI: ", "uri");
        if (!IsUri(uri)) throw new SiweFormatException("uri", "The URI is not an RFC 3986 URI.");
        var version = Field(Next("version"), "Version: ", "version");
        if (version != "1") throw new SiweFormatException("version", "The version must be 1.");
        var chain = Field(Next("chain-id"), "Chain ID: ", "chain-id");
        if (!DigitsRule().IsMatch(chain) || !long.TryParse(chain, NumberStyles.None, CultureInfo.InvariantCulture, out var chainId))
            throw new SiweFormatException("chain-id", "The chain ID must be a decimal number (EIP-155).");
        var nonce = Field(Next("nonce"), "Nonce: ", "nonce");
        if (!NonceRule().IsMatch(nonce)) throw new SiweFormatException("nonce", "The nonce must be at least 8 letters or digits.");
        var issuedAt = DateTime(Field(Next("issued-at"), "Issued At: ", "issued-at"), "issued-at");

        DateTimeOffset? expirationTime = null, notBefore = null;
        string? requestId = null;
        List<string> resources = [];
        if (at < lines.Length && lines[at].StartsWith("Expiration Time: ", StringComparison.Ordinal))
            expirationTime = DateTime(lines[at++]["Expiration Time: ".Length..], "expiration-time");
        if (at < lines.Length && lines[at].StartsWith("Not Before: ", StringComparison.Ordinal))
            notBefore = DateTime(lines[at++]["Not Before: ".Length..], "not-before");
        if (at < lines.Length && lines[at].StartsWith("Request ID: ", StringComparison.Ordinal))
        {
            requestId = lines[at++]["Request ID: ".Length..];
            if (!RequestIdRule().IsMatch(requestId)) throw new SiweFormatException("request-id", "The request ID may hold only RFC 3986 path characters.");
        }
        if (at < lines.Length && lines[at] == "Resources:")
        {
            at++;
            while (at < lines.Length && lines[at].StartsWith("- ", StringComparison.Ordinal))
            {
                var resource = lines[at++][2..];
                if (!IsUri(resource)) throw new SiweFormatException("resources", $"The resource '{resource}' is not an RFC 3986 URI.");
                resources.Add(resource);
            }
        }
        if (at < lines.Length)
            throw new SiweFormatException(FieldAt(lines[at]), $"Line {at + 1} is not where the message format allows it (fields come in a fixed order, and nothing follows the last one, not even a line break).");

        return new SiweMessage(scheme, origin, address, statement, uri, version, chainId, nonce, issuedAt, expirationTime, notBefore, requestId, resources);
    }

    /// <summary>The message text as a wallet is asked to sign it (the same grammar, written out).</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        if (Scheme is not null) text.Append(Scheme).Append("://");
        text.Append(Domain).Append(Preamble).Append('\n').Append(Address).Append("\n\n");
        if (Statement is not null) text.Append(Statement).Append('\n');
        text.Append('\n')
            .Append("URI: ").Append(Uri).Append('\n')
            .Append("Version: ").Append(Version).Append('\n')
            .Append("Chain ID: ").Append(ChainId.ToString(CultureInfo.InvariantCulture)).Append('\n')
            .Append("Nonce: ").Append(Nonce).Append('\n')
            .Append("Issued At: ").Append(Timestamp(IssuedAt));
        if (ExpirationTime is { } expires) text.Append("\nExpiration Time: ").Append(Timestamp(expires));
        if (NotBefore is { } notBefore) text.Append("\nNot Before: ").Append(Timestamp(notBefore));
        if (RequestId is not null) text.Append("\nRequest ID: ").Append(RequestId);
        if (Resources.Count > 0)
        {
            text.Append("\nResources:");
            foreach (var resource in Resources) text.Append("\n- ").Append(resource);
        }
        return text.ToString();
    }

    public static string Timestamp(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    private static void Blank(string line, string field)
    {
        if (line.Length != 0) throw new SiweFormatException(field, "An empty line must follow the address, and another the statement (when there is one).");
    }

    private static string Field(string line, string prefix, string field) =>
        line.StartsWith(prefix, StringComparison.Ordinal) ? line[prefix.Length..]
            : throw new SiweFormatException(field, $"Expected the line '{prefix}<{field}>' here (fields come in a fixed order).");

    private static string FieldAt(string line) =>
        line.StartsWith("Expiration Time: ", StringComparison.Ordinal) ? "expiration-time"
        : line.StartsWith("Not Before: ", StringComparison.Ordinal) ? "not-before"
        : line.StartsWith("Request ID: ", StringComparison.Ordinal) ? "request-id"
        : line.StartsWith("Resources:", StringComparison.Ordinal) || line.StartsWith("- ", StringComparison.Ordinal) ? "resources"
        : "message";

    /// <summary>RFC 3339 date-time: the grammar first (.NET alone would take other ISO 8601 forms), then the calendar.</summary>
    private static DateTimeOffset DateTime(string value, string field) =>
        DateTimeRule().IsMatch(value) && DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at)
            ? at
            : throw new SiweFormatException(field, $"'{value}' is not an RFC 3339 date-time (e.g. 2026-01-02T03:04:05Z).");

    /// <summary>RFC 3986 authority: [ userinfo "@" ] host [ ":" port ], with a non-empty host.</summary>
    private static bool IsAuthority(string value)
    {
        var at = value.IndexOf('@');
        if (at >= 0)
        {
            if (!UserInfoRule().IsMatch(value[..at])) return false;
            value = value[(at + 1)..];
        }
        string host;
        if (value.StartsWith('['))
        {
            var end = value.IndexOf(']');
            if (end < 0) return false;
            host = value[..(end + 1)];
            var literal = host[1..^1];
            if (!(IpFutureRule().IsMatch(literal) || (System.Net.IPAddress.TryParse(literal, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 && !literal.Contains('%'))))
                return false;
            value = value[(end + 1)..];
            if (value.Length > 0 && value[0] != ':') return false;
        }
        else
        {
            var colon = value.IndexOf(':');
            host = colon >= 0 ? value[..colon] : value;
            if (!RegNameRule().IsMatch(host)) return false;
            value = colon >= 0 ? value[colon..] : "";
        }
        return host.Length > 0 && (value.Length == 0 || DigitsOrEmptyRule().IsMatch(value[1..]));
    }

    /// <summary>RFC 3986 URI: a scheme, a colon, and only the characters a URI may hold (percent-escapes well formed), that .NET also reads as absolute.</summary>
    private static bool IsUri(string value) =>
        UriRule().IsMatch(value) && System.Uri.TryCreate(value, UriKind.Absolute, out _);

    [GeneratedRegex("^[A-Za-z][A-Za-z0-9+.-]*$")] private static partial Regex SchemeRule();
    [GeneratedRegex("^0x[0-9A-Fa-f]{40}$")] private static partial Regex AddressRule();
    // reserved / unreserved / " "
    [GeneratedRegex(@"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;= ]*$")] private static partial Regex StatementRule();
    [GeneratedRegex("^[0-9]+$")] private static partial Regex DigitsRule();
    [GeneratedRegex("^[0-9]*$")] private static partial Regex DigitsOrEmptyRule();
    [GeneratedRegex("^[A-Za-z0-9]{8,}$")] private static partial Regex NonceRule();
    // *pchar: unreserved / pct-encoded / sub-delims / ":" / "@"
    [GeneratedRegex(@"^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*$")] private static partial Regex RequestIdRule();
    [GeneratedRegex(@"^(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|%[0-9A-Fa-f]{2})*$")] private static partial Regex UserInfoRule();
    [GeneratedRegex(@"^(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$")] private static partial Regex RegNameRule();
    [GeneratedRegex(@"^[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+$")] private static partial Regex IpFutureRule();
    [GeneratedRegex(@"^[A-Za-z][A-Za-z0-9+.-]*:(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$")] private static partial Regex UriRule();
    // full-date "T" full-time (RFC 3339 §5.6; "T" and "Z" may be lower case there)
    [GeneratedRegex(@"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$")] private static partial Regex DateTimeRule();
}

/// <summary>A message that breaks the EIP-4361 grammar; <see cref="Field"/> names the rule.</summary>
public sealed class SiweFormatException(string field, string message) : FormatException(message)
{
    public string Field { get; } = field;
}
