namespace Cortensor.Api.Metering;

/// <summary>Values that reach the ledger, made storable whatever a client sent.</summary>
public static class LedgerText
{
    /// <summary>An identifier (e.g. a requested model name): printable ASCII only, at most <paramref name="max"/> characters.</summary>
    public static string Identifier(string value, int max)
    {
        Span<char> buffer = stackalloc char[Math.Min(value.Length, max)];
        for (var i = 0; i < buffer.Length; i++)
            buffer[i] = value[i] is >= '!' and <= '~' ? value[i] : '?';
        return new string(buffer);
    }
}
