using Cortensor.Api.Accounts.Siwe;
using Nethereum.Signer;

namespace Cortensor.Tests.Unit;

/// <summary>
/// The EIP-4361 grammar and EIP-191 signature recovery, with vectors from the specification and from the
/// reference implementation's test suite (spruceid/siwe, test/*.json), and keys made here.
/// </summary>
public class SiweMessageTests
{
    // The specification's example message (ERC-4361 "Examples", implicit scheme).
    private const string SpecExample =
        "example.com wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n" +
        "I accept the ExampleOrg Terms of Service: https://example.com/tos\n\nURI: https://example.com/login\nVersion: 1\nChain ID: 1\n" +
        "Nonce: 32891756\nIssued At: 2021-09-30T16:25:24Z\nResources:\n- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/\n" +
        "- https://example.com/my-web2-claim.json";

    [Fact]
    public void TheSpecificationsExampleParsesIntoItsFields()
    {
        var m = SiweMessage.Parse(SpecExample);
        Assert.Null(m.Scheme);
        Assert.Equal("example.com", m.Domain);
        Assert.Equal("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", m.Address);
        Assert.Equal("I accept the ExampleOrg Terms of Service: https://example.com/tos", m.Statement);
        Assert.Equal("https://example.com/login", m.Uri);
        Assert.Equal("1", m.Version);
        Assert.Equal(1, m.ChainId);
        Assert.Equal("32891756", m.Nonce);
        Assert.Equal(new DateTimeOffset(2021, 9, 30, 16, 25, 24, TimeSpan.Zero), m.IssuedAt);
        Assert.Equal(["ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/", "https://example.com/my-web2-claim.json"], m.Resources);
    }

    [Theory]
    // spruceid/siwe test/parsing_positive.json, and the specification's explicit-scheme and port examples.
    [InlineData("service.org wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\nI accept the ServiceOrg Terms of Service: https://service.org/tos\n\nURI: https://service.org/login\nVersion: 1\nChain ID: 1\nNonce: 32891757\nIssued At: 2021-09-30T16:25:24.000Z", "service.org", null)]
    [InlineData("127.0.0.1 wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\nI accept the ServiceOrg Terms of Service: https://service.org/tos\n\nURI: https://service.org/login\nVersion: 1\nChain ID: 1\nNonce: 32891757\nIssued At: 2021-09-30T16:25:24.000Z", "127.0.0.1", null)]
    [InlineData("test@127.0.0.1:8080 wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\nI accept the ServiceOrg Terms of Service: https://service.org/tos\n\nURI: https://service.org/login\nVersion: 1\nChain ID: 1\nNonce: 32891757\nIssued At: 2021-09-30T16:25:24.000Z", "test@127.0.0.1:8080", null)]
    [InlineData("service.org wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n\nURI: https://service.org/login\nVersion: 1\nChain ID: 1\nNonce: 32891757\nIssued At: 2021-09-30T16:25:24.000Z", "service.org", null)]
    [InlineData("https://example.com wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\nI accept the ExampleOrg Terms of Service: https://example.com/tos\n\nURI: https://example.com/login\nVersion: 1\nChain ID: 1\nNonce: 32891756\nIssued At: 2021-09-30T16:25:24Z", "example.com", "https")]
    [InlineData("example.com:3388 wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n\nURI: https://example.com/login\nVersion: 1\nChain ID: 42161\nNonce: 32891756\nIssued At: 2021-09-30T16:25:24+02:00\nExpiration Time: 2021-09-30T17:25:24Z\nNot Before: 2021-09-30T16:00:00Z\nRequest ID: some_id\nResources:\n- https://example.com/a", "example.com:3388", null)]
    public void ConformingMessagesParse(string text, string domain, string? scheme)
    {
        var m = SiweMessage.Parse(text);
        Assert.Equal(domain, m.Domain);
        Assert.Equal(scheme, m.Scheme);
    }

    [Theory]
    // spruceid/siwe test/parsing_negative.json (the cases its grammar and ours agree on), and a few more.
    [InlineData("missing mandatory field", "service.org wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\nI accept the ServiceOrg Terms of Service: https://service.org/tos\n\nVersion: 1\nNonce: 32891757\nIssued At: 2021-09-30T16:25:24Z", "uri")]
    [InlineData("extra line breaks", "service.org wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n\nI accept the ServiceOrg Terms of Service: https://service.org/tos\n\nURI: https://service.org/login\nVersion: 1\nChain ID: 1\nNonce: 32891757\nIssued At: 2021-09-30T16:25:24Z", "uri")]
    [InlineData("non-ISO datetime", "service.org wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n\nURI: https://service.org/login\nVersion: 1\nChain ID: 1\nNonce: 32891757\nIssued At: Wed Oct 05 2011 16:48:00 GMT+0200 (CEST)", "issued-at")]
    [InlineData("out of order fields", "service.org wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n\nURI: https://service.org/login\nChain ID: 1\nVersion: 1\nNonce: 32891757\nIssued At: 2021-09-30T16:25:24Z", "version")]
    [InlineData("wrong version", "service.org wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n\nURI: https://service.org/login\nVersion: 2\nChain ID: 1\nNonce: 32891757\nIssued At: 2021-09-30T16:25:24Z", "version")]
    [InlineData("missing domain", " wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n\nURI: https://service.org/login\nVersion: 1\nChain ID: 1\nNonce: 32891757\nIssued At: 2021-09-30T16:25:24Z", "domain")]
    [InlineData("missing address", "service.org wants you to sign in with your Ethereum account:\n\n\n\nURI: https://service.org/login\nVersion: 1\nChain ID: 1\nNonce: 32891757\nIssued At: 2021-09-30T16:25:24Z", "address")]
    [InlineData("address not EIP-55", "service.org wants you to sign in with your Ethereum account:\n0xe5a12547fe4e872d192e3ececb76f2ce1aea4946\n\n\nURI: https://service.org/login\nVersion: 1\nChain ID: 1\nNonce: 32891757\nIssued At: 2021-09-30T16:25:24Z", "address")]
    [InlineData("statement has line break", "service.org wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\nI accept the ServiceOrg Terms of Service: \nhttps://service.org/tos\n\nURI: https://service.org/login\nVersion: 1\nChain ID: 1\nNonce: 32891757\nIssued At: 2021-09-30T16:25:24Z", "statement")]
    [InlineData("statement outside the character set", "service.org wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\nSay \"yes\"\n\nURI: https://service.org/login\nVersion: 1\nChain ID: 1\nNonce: 32891757\nIssued At: 2021-09-30T16:25:24Z", "statement")]
    [InlineData("uri is non-RFC 3986", "service.org wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n\nURI: _not_a_rfc3986_valid_uri_\nVersion: 1\nChain ID: 1\nNonce: 32891757\nIssued At: 2021-09-30T16:25:24Z", "uri")]
    [InlineData("not a valid chainId", "service.org wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n\nURI: https://service.org/login\nVersion: 1\nChain ID: ?\nNonce: 32891757\nIssued At: 2021-09-30T16:25:24Z", "chain-id")]
    [InlineData("nonce with less than 8 chars", "service.org wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n\nURI: https://service.org/login\nVersion: 1\nChain ID: 1\nNonce: 1234567\nIssued At: 2021-09-30T16:25:24Z", "nonce")]
    [InlineData("out of order requestId", "service.org wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n\nURI: https://service.org/login\nVersion: 1\nChain ID: 1\nNonce: 12341234\nIssued At: 2022-03-17T12:45:13.610Z\nResources:\n- https://service.org/login\nRequest ID: some_id", "request-id")]
    [InlineData("resources not separated by line break", "service.org wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n\nURI: https://service.org/login\nVersion: 1\nChain ID: 1\nNonce: 12341234\nIssued At: 2022-03-17T12:45:13.610Z\nResources:\n- https://service.org/login - https://service.org/login/2", "resources")]
    [InlineData("second resource not RFC 3986", "service.org wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n\nURI: https://service.org/login\nVersion: 1\nChain ID: 1\nNonce: 12341234\nIssued At: 2022-03-17T12:45:13.610Z\nResources:\n- https://service.org/login\n- _not_a_rfc3986_valid_uri_", "resources")]
    [InlineData("a trailing line break", "service.org wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n\nURI: https://service.org/login\nVersion: 1\nChain ID: 1\nNonce: 32891757\nIssued At: 2021-09-30T16:25:24Z\n", "message")]
    [InlineData("CRLF line breaks", "service.org wants you to sign in with your Ethereum account:\r\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\r\n\r\n\r\nURI: https://service.org/login\r\nVersion: 1\r\nChain ID: 1\r\nNonce: 32891757\r\nIssued At: 2021-09-30T16:25:24Z", "domain")]
    [InlineData("a bad scheme", "1http://service.org wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n\nURI: https://service.org/login\nVersion: 1\nChain ID: 1\nNonce: 32891757\nIssued At: 2021-09-30T16:25:24Z", "scheme")]
    [InlineData("a date-time without a zone", "service.org wants you to sign in with your Ethereum account:\n0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n\nURI: https://service.org/login\nVersion: 1\nChain ID: 1\nNonce: 32891757\nIssued At: 2021-09-30T16:25:24", "issued-at")]
    public void NonConformingMessagesAreRefusedNamingTheRule(string because, string text, string field)
    {
        var error = Assert.Throws<SiweFormatException>(() => SiweMessage.Parse(text));
        Assert.True(error.Field == field, $"{because}: expected the '{field}' rule, got '{error.Field}': {error.Message}");
    }

    [Fact]
    public void AMessageWrittenOutParsesBackToTheSameFields()
    {
        var m = SiweMessage.Parse(SpecExample);
        Assert.Equal(m, SiweMessage.Parse(m.ToString()) with { Resources = m.Resources });
        Assert.Equal(m.Resources, SiweMessage.Parse(m.ToString()).Resources);
    }

    [Fact]
    public void TheReferenceImplementationsSignedVectorRecoversItsAddress()
    {
        // spruceid/siwe test/validation_positive.json "example message", written out as its toMessage() does.
        const string text = "login.xyz wants you to sign in with your Ethereum account:\n0x9D85ca56217D2bb651b00f15e694EB7E713637D4\n\n" +
            "Sign-In With Ethereum Example Statement\n\nURI: https://login.xyz\nVersion: 1\nChain ID: 1\nNonce: bTyXgcQxn2htgkjJn\n" +
            "Issued At: 2022-01-27T17:09:38.578Z\nExpiration Time: 2100-01-07T14:31:43.952Z";
        const string signature = "0xdc35c7f8ba2720df052e0092556456127f00f7707eaa8e3bbff7e56774e7f2e05a093cfc9e02964c33d86e8e066e221b7d153d27e5a2e97ccd5ca7d3f2ce06cb1b";
        var m = SiweMessage.Parse(text);
        Assert.Equal("0x9D85ca56217D2bb651b00f15e694EB7E713637D4", SiweVerifier.Recover(text, signature), ignoreCase: true);
        Assert.Equal(m.Address, SiweVerifier.Recover(text, signature), ignoreCase: true);
        // One character more, and the signature is someone else's.
        Assert.NotEqual(m.Address, SiweVerifier.Recover(text + " ", signature), StringComparer.OrdinalIgnoreCase);
    }

    [Fact]
    public void ASignatureMadeWithAKeyRecoversThatKeysAddressAndNoOther()
    {
        var key = EthECKey.GenerateKey();
        var other = EthECKey.GenerateKey();
        var message = new SiweMessage(null, "portal.example", key.GetPublicAddress(), "Sign in to the Cortensor Portal.", "https://portal.example/signin",
            "1", 42161, "abcdef1234567890", DateTimeOffset.UtcNow, null, null, null, []).ToString();
        Assert.Equal(key.GetPublicAddress(), SiweMessage.Parse(message).Address);
        var signature = new EthereumMessageSigner().EncodeUTF8AndSign(message, key);
        Assert.Equal(key.GetPublicAddress(), SiweVerifier.Recover(message, signature), ignoreCase: true);
        Assert.NotEqual(other.GetPublicAddress(), SiweVerifier.Recover(message, signature), StringComparer.OrdinalIgnoreCase);
        Assert.Equal(other.GetPublicAddress(), SiweVerifier.Recover(message, new EthereumMessageSigner().EncodeUTF8AndSign(message, other)), ignoreCase: true);

        // v as 0/1 (some hardware wallets) recovers the same; a v that is neither, or a signature of zeros, recovers nothing.
        var bytes = Convert.FromHexString(signature[2..]);
        bytes[64] -= 27;
        Assert.Equal(key.GetPublicAddress(), SiweVerifier.Recover(message, "0x" + Convert.ToHexString(bytes)), ignoreCase: true);
        bytes[64] = 5;
        Assert.Null(SiweVerifier.Recover(message, "0x" + Convert.ToHexString(bytes)));
        Assert.Null(SiweVerifier.Recover(message, "0x" + new string('0', 128) + "1b"));
    }
}
