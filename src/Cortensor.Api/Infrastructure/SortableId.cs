using System.Security.Cryptography;

namespace Cortensor.Api.Infrastructure;

/// <summary>
/// Identifiers that sort by the millisecond they were made (UUID version 7, RFC 9562) for what every request creates:
/// its request id and its usage event id.
/// </summary>
/// <remarks>
/// <see cref="Guid.CreateVersion7()"/> and <see cref="Guid.NewGuid"/> read their random bits from <c>/dev/urandom</c>
/// with one system call per identifier on the portable Linux runtime. Two a request were about 2 % of the Api's CPU on
/// a virtual machine where every system call is dear (bench/limits.md, ninth round). The random bits here come from
/// <see cref="RandomNumberGenerator"/>, OpenSSL's generator in user space: as unpredictable, with no system call.
/// </remarks>
public static class SortableId
{
    public static Guid NewGuid(TimeProvider? clock = null)
    {
        Span<byte> bytes = stackalloc byte[16];
        RandomNumberGenerator.Fill(bytes[6..]);
        var unixMs = (clock ?? TimeProvider.System).GetUtcNow().ToUnixTimeMilliseconds();
        // 48 bits of Unix milliseconds, big-endian, then the version and variant bits as RFC 9562 lays them out.
        for (var i = 5; i >= 0; i--, unixMs >>= 8)
            bytes[i] = (byte)unixMs;
        bytes[6] = (byte)(0x70 | (bytes[6] & 0x0F));
        bytes[8] = (byte)(0x80 | (bytes[8] & 0x3F));
        return new Guid(bytes, bigEndian: true);
    }

    /// <summary>The prefix and the identifier's 32 hex digits, made as one string.</summary>
    public static string New(string prefix) =>
        string.Create(prefix.Length + 32, prefix, static (chars, prefix) =>
        {
            prefix.CopyTo(chars);
            NewGuid().TryFormat(chars[prefix.Length..], out _, "N");
        });
}
