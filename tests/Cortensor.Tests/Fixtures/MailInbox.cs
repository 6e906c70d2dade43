using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Cortensor.Tests.Fixtures;

/// <summary>A mail as maildev caught it.</summary>
public sealed record CaughtMail(string Id, string To, string Subject, string Text)
{
    /// <summary>The first link in the mail whose path starts with <paramref name="path"/>.</summary>
    public Uri Link(string path) =>
        Regex.Matches(Text, @"https?://\S+").Select(m => new Uri(m.Value)).FirstOrDefault(u => u.AbsolutePath.StartsWith(path, StringComparison.Ordinal))
        ?? throw new InvalidOperationException($"No {path} link in mail '{Subject}':\n{Text}");

    public string Query(string path, string name) =>
        System.Web.HttpUtility.ParseQueryString(Link(path).Query)[name] ?? throw new InvalidOperationException($"The {path} link has no '{name}'.");
}

/// <summary>The local mail catcher's inbox, read through maildev's REST API (GET /email), as the tests' mailbox.</summary>
public sealed class MailInbox(Func<HttpClient> client)
{
    public async Task<IReadOnlyList<CaughtMail>> ForAsync(string address)
    {
        using var http = client();
        var all = await http.GetFromJsonAsync<JsonElement>("/email");
        return all.EnumerateArray()
            .Where(m => m.GetProperty("to").EnumerateArray().Any(t => string.Equals(t.GetProperty("address").GetString(), address, StringComparison.OrdinalIgnoreCase)))
            .Select(m => new CaughtMail(m.GetProperty("id").GetString()!, address, m.GetProperty("subject").GetString() ?? "", m.GetProperty("text").GetString() ?? ""))
            .ToList();
    }

    /// <summary>Waits (up to <paramref name="timeout"/>) for the <paramref name="count"/>-th mail to the address whose subject contains <paramref name="subject"/>.</summary>
    public async Task<CaughtMail> WaitForAsync(string address, string subject, int count = 1, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (true)
        {
            var matching = (await ForAsync(address)).Where(m => m.Subject.Contains(subject, StringComparison.OrdinalIgnoreCase)).ToList();
            if (matching.Count >= count) return matching[count - 1];
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"No mail '{subject}' #{count} to {address} within the deadline (got {matching.Count}).");
            await Task.Delay(200);
        }
    }
}
