using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Cortensor.Tests.Fixtures;

/// <summary>
/// The whole AppHost graph (Postgres, Redis, router pools, migrations, Api, Web) booted once for
/// a test collection, as `./run.sh` would boot it, with its own data directory.
/// </summary>
public class PortalAppFixture : IAsyncLifetime
{
    public const string RouterToken = "cortensor-dev-router-token";
    /// <summary>The initial operator account: the AppHost's documented dev defaults.</summary>
    public const string AdminEmail = "admin@cortensor.local";
    public const string AdminPassword = "Cortensor-dev-admin-1";
    /// <summary>The Api runs as two replicas, as in production, so every e2e test crosses replicas.</summary>
    public const int ApiReplicas = 2;
    /// <summary>The Web runs as two replicas too: a browser session must survive moving between them.</summary>
    public const int WebReplicas = 2;
    private readonly string _dataDirectory = Path.Combine(Path.GetTempPath(), "cortensor-tests", "apphost-" + Guid.NewGuid().ToString("N"));

    /// <summary>
    /// The Api's --Routing:UpstreamTimeoutMs in this graph. Tests slow a router by two or three seconds to hold requests in
    /// flight, and must not meet this cap meanwhile: at 4 s the margin was one second, which a loaded CI machine can use up.
    /// </summary>
    public static readonly TimeSpan UpstreamTimeout = TimeSpan.FromMilliseconds(8000);
    private static readonly TimeSpan HealthTimeout = TimeSpan.FromMinutes(2);

    public DistributedApplication App { get; private set; } = null!;
    /// <summary>An external identity provider (Supabase-like) the Api is configured to trust.</summary>
    public TestIdentityProvider IdentityProvider { get; private set; } = null!;
    /// <summary>Stands in for api.stripe.com: the Api buys credit through it and the tests sign its webhooks.</summary>
    public StripeStandIn Stripe { get; private set; } = null!;
    private (string Token, DateTime IssuedAt)? _adminToken;
    private readonly SemaphoreSlim _adminSignIn = new(1, 1);

    public async Task InitializeAsync()
    {
        try
        {
            await StartAsync();
        }
        catch
        {
            // xUnit does not dispose a fixture whose start failed: leave no process behind.
            await DisposeAsync();
            throw;
        }
    }

    private async Task StartAsync()
    {
        // The orchestrator stops the graph when a test host dies, but the data stays: the next run sweeps it.
        SweepAbandonedDataDirectories();
        Directory.CreateDirectory(_dataDirectory);
        await File.WriteAllTextAsync(Path.Combine(_dataDirectory, OwnerFile), Environment.ProcessId.ToString());
        IdentityProvider = await TestIdentityProvider.StartAsync();
        Stripe = await StripeStandIn.StartAsync();
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Cortensor_AppHost>(
        [
            "--Infrastructure:Mode=local",
            $"--Infrastructure:DataDirectory={_dataDirectory}",
            $"--Api:Replicas={ApiReplicas}",
            $"--Web:Replicas={WebReplicas}",
            $"--Routing:UpstreamTimeoutMs={(int)UpstreamTimeout.TotalMilliseconds}",
            "--Routing:ProbeIntervalMs=500",
            "--Auth:External:Provider=supabase",
            $"--Auth:External:Issuer={TestIdentityProvider.Issuer}",
            $"--Auth:External:Audience={TestIdentityProvider.Audience}",
            $"--Auth:External:JwksUrl={IdentityProvider.JwksUrl}",
            "--Auth:External:RequireHttps=false",
            $"--Parameters:stripe-secret-key={StripeStandIn.SecretKey}",
            $"--Parameters:stripe-webhook-secret={StripeStandIn.WebhookSecret}",
            $"--Stripe:ApiBase={Stripe.ApiBase}",
            .. AppHostArguments,
        ]);
        builder.Services.AddLogging(logging => logging
            .SetMinimumLevel(LogLevel.Warning)
            .AddFilter("Cortensor.AppHost.Resources", LogLevel.Error)
            .AddFilter("Aspire.Hosting", LogLevel.Error));

        // The Api's console lines as JSON with their scopes, so each carries its request's X-Request-Id and a test
        // can find a request's lines (the plain formatter prints the request-id scope as a type name). Given as
        // arguments: the orchestrator sets LOGGING__CONSOLE__FORMATTERNAME itself, and arguments win over it.
        builder.CreateResourceBuilder(builder.Resources.OfType<ProjectResource>().Single(r => r.Name == LaunchTopology.Api))
            .WithArgs("--Logging:Console:FormatterName=json", "--Logging:Console:FormatterOptions:IncludeScopes=true");

        App = await builder.BuildAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        await App.StartAsync(timeout.Token);
        await App.ResourceNotifications.WaitForResourceHealthyAsync(LaunchTopology.Api, timeout.Token);
        await App.ResourceNotifications.WaitForResourceHealthyAsync(LaunchTopology.Web, timeout.Token);
    }

    /// <summary>What a variant of the graph adds to the AppHost's command line (e.g. another key provider).</summary>
    protected virtual IEnumerable<string> AppHostArguments => [];

    private const string OwnerFile = "owner.pid";

    /// <summary>Deletes the data of earlier runs whose test host is gone (only directories that name their owner).</summary>
    private static void SweepAbandonedDataDirectories()
    {
        var root = Path.Combine(Path.GetTempPath(), "cortensor-tests");
        if (!Directory.Exists(root)) return;
        foreach (var directory in Directory.EnumerateDirectories(root, "apphost-*"))
        {
            var owner = Path.Combine(directory, OwnerFile);
            if (!File.Exists(owner) || !int.TryParse(File.ReadAllText(owner), out var pid) || Directory.Exists($"/proc/{pid}")) continue;
            try { Directory.Delete(directory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    public HttpClient CreateClient(string resource) => App.CreateHttpClient(resource);

    /// <summary>
    /// Each replica's own address (the port it listens on behind the AppHost's proxy), so a test can
    /// choose which replica a browser talks to, as a load balancer with sticky sessions would.
    /// </summary>
    public async Task<IReadOnlyList<Uri>> ReplicaUrlsAsync(string resource, int count)
    {
        var found = new Dictionary<string, Uri>();
        var seen = new List<string>();
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        try
        {
            await foreach (var e in App.ResourceNotifications.WatchAsync(deadline.Token))
            {
                if (e.Resource.Name != resource || e.Snapshot.State?.Text != KnownResourceStates.Running) continue;
                var env = e.Snapshot.EnvironmentVariables.ToDictionary(v => v.Name, v => v.Value);
                seen.Add($"{e.ResourceId}: {string.Join(", ", env.Where(v => v.Key.Contains("PORT") || v.Key.Contains("URLS")).Select(v => $"{v.Key}={v.Value}"))}");
                var port = env.GetValueOrDefault("HTTP_PORTS") ?? env.GetValueOrDefault("ASPNETCORE_HTTP_PORTS");
                var urls = env.GetValueOrDefault("ASPNETCORE_URLS");
                Uri? url = port is { Length: > 0 } ? new Uri($"http://localhost:{port.Split(';')[0]}")
                    : urls is { Length: > 0 } ? new Uri(urls.Split(';')[0].Replace("+", "localhost").Replace("*", "localhost")) : null;
                if (url is not null) found[e.ResourceId] = url;
                if (found.Count == count) return [.. found.Values.OrderBy(u => u.Port)];
            }
        }
        catch (OperationCanceledException) { }
        throw new InvalidOperationException($"{resource}: found {found.Count} of {count} replica addresses; saw {string.Join(" | ", seen)}");
    }

    public HttpClient CreateRouterClient(string router)
    {
        var client = App.CreateHttpClient(router);
        client.DefaultRequestHeaders.Authorization = new("Bearer", RouterToken);
        return client;
    }

    /// <summary>
    /// A client signed in as the initial administrator. Access tokens last 15 minutes; the cached one is
    /// replaced after 10, so a slow run never sends an expired token.
    /// </summary>
    public HttpClient CreateAdminClient()
    {
        _adminSignIn.Wait();
        try
        {
            if (_adminToken is not { } cached || DateTime.UtcNow - cached.IssuedAt > TimeSpan.FromMinutes(10))
                _adminToken = (SignInAsync(AdminEmail, AdminPassword).GetAwaiter().GetResult(), DateTime.UtcNow);
            return CreateClientWithToken(_adminToken.Value.Token);
        }
        finally
        {
            _adminSignIn.Release();
        }
    }

    /// <summary>The Api's replica instances as the dashboard names them (e.g. api-x7k2mq9d): what x-cortensor-replica says.</summary>
    public Task<IReadOnlySet<string>> ApiReplicasAsync() => InstancesAsync(LaunchTopology.Api, ApiReplicas);

    /// <summary>The running instances of a resource (Aspire suffixes every executable and replica with a random id).</summary>
    public async Task<IReadOnlySet<string>> InstancesAsync(string resource, int expected = 1)
    {
        var found = new HashSet<string>(StringComparer.Ordinal);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            // The watch starts with the current state of every resource instance.
            await foreach (var e in App.ResourceNotifications.WatchAsync(timeout.Token))
                if (e.Resource.Name == resource && found.Add(e.ResourceId) && found.Count == expected) break;
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"found {found.Count} of {expected} instances of {resource}: {string.Join(", ", found)}");
        }
        return found;
    }

    /// <summary>Which Api replica answered.</summary>
    public static string ReplicaOf(HttpResponseMessage response) =>
        response.Headers.TryGetValues("x-cortensor-replica", out var values) ? values.Single() : throw new Xunit.Sdk.XunitException("no x-cortensor-replica header");

    /// <summary>Waits (with a deadline) until a resource's health checks pass again, e.g. after a restart.</summary>
    public async Task WaitHealthyAsync(string resource)
    {
        using var timeout = new CancellationTokenSource(HealthTimeout);
        await App.ResourceNotifications.WaitForResourceHealthyAsync(resource, timeout.Token);
    }

    /// <summary>A router's own counters (GET /api/v1/status): requests completed and failed on that node.</summary>
    public async Task<(long Completed, long Failed)> RouterCountersAsync(string router)
    {
        using var client = CreateRouterClient(router);
        using var response = await client.GetAsync("/api/v1/status");
        var status = await response.Content.ReadFromJsonAsync<JsonElement>();
        return (status.GetProperty("completed").GetInt64(), status.GetProperty("failed").GetInt64());
    }

    /// <summary>A router's tasks in flight (GET /api/v1/status): requests admitted and now waiting on that node.</summary>
    public async Task<long> RouterLoadAsync(string router)
    {
        using var client = CreateRouterClient(router);
        using var response = await client.GetAsync("/api/v1/status");
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("load").GetInt64();
    }

    public HttpClient CreateClientWithToken(string accessToken)
    {
        var client = App.CreateHttpClient(LaunchTopology.Api);
        client.DefaultRequestHeaders.Authorization = new("Bearer", accessToken);
        return client;
    }

    public async Task<string> SignInAsync(string email, string password)
    {
        using var client = App.CreateHttpClient(LaunchTopology.Api);
        var response = await client.PostAsJsonAsync("/portal/auth/login", new { email, password });
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString()!;
    }

    /// <summary>The local mail catcher's inbox (maildev): every mail the Api sent.</summary>
    public MailInbox Mail => new(() => App.CreateHttpClient(MailResource, "http"));
    public const string MailResource = "mail";

    /// <summary>
    /// An anonymous Api client that looks like a customer at <paramref name="clientIp"/>: the Api trusts
    /// X-Forwarded-For from loopback proxies, as it trusts the ingress in production.
    /// </summary>
    public HttpClient CreateClientFrom(string clientIp)
    {
        var client = App.CreateHttpClient(LaunchTopology.Api);
        client.DefaultRequestHeaders.Add("X-Forwarded-For", clientIp);
        return client;
    }

    /// <summary>A made-up public address, so the suite's many sign-ups are many customers, not one throttled one.</summary>
    public static string RandomClientIp() => $"198.18.{Random.Shared.Next(0, 256)}.{Random.Shared.Next(1, 255)}";

    /// <summary>
    /// A new account through the public sign-up, as a customer would make it: sign up, follow the verification
    /// link from the mail the Api sent (read from the mail catcher), sign in.
    /// </summary>
    public async Task<TestUser> SignUpAsync(string? organization = null, bool verified = true)
    {
        var email = $"user-{Guid.NewGuid():N}@example.com";
        using var client = CreateClientFrom(RandomClientIp());
        var response = await client.PostAsJsonAsync("/portal/auth/signup", new { email, password = TestUser.Password, organization });
        response.EnsureSuccessStatusCode();
        var login = await client.PostAsJsonAsync("/portal/auth/login", new { email, password = TestUser.Password });
        login.EnsureSuccessStatusCode();
        var tokens = await login.Content.ReadFromJsonAsync<JsonElement>();
        var access = tokens.GetProperty("access_token").GetString()!;
        using var me = CreateClientWithToken(access);
        if (verified) await VerifyAsync(me, email);
        var profile = await me.GetFromJsonAsync<JsonElement>("/portal/me");
        return new TestUser(profile.GetProperty("id").GetGuid(), email, access, tokens.GetProperty("refresh_token").GetString()!,
            profile.GetProperty("organizations")[0].GetProperty("id").GetGuid(), this);
    }

    /// <summary>Follows the verification link of the first verification mail to <paramref name="email"/>, signed in as its account.</summary>
    public async Task VerifyAsync(HttpClient signedIn, string email)
    {
        var mail = await Mail.WaitForAsync(email, "Verify your e-mail");
        var verified = await signedIn.PostAsJsonAsync("/portal/auth/verify-email",
            new { user_id = mail.Query("/verify-email", "user"), token = mail.Query("/verify-email", "token") });
        if (!verified.IsSuccessStatusCode) throw new InvalidOperationException("Verification failed: " + await verified.Content.ReadAsStringAsync());
    }

    /// <summary>A new organisation on <paramref name="plan"/> with one key, made through the admin API.</summary>
    public async Task<TestCustomer> CreateCustomerAsync(string plan = "pro", decimal credits = 10m, object? keyOptions = null)
    {
        using var admin = CreateAdminClient();
        var org = await admin.PostAsJsonAsync("/admin/organizations", new { name = "Test org " + Guid.NewGuid().ToString("N")[..6], plan });
        org.EnsureSuccessStatusCode();
        var orgId = (await org.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        if (credits > 0)
            (await admin.PostAsJsonAsync($"/admin/organizations/{orgId}/credits", new { amount = credits, reason = "test" })).EnsureSuccessStatusCode();
        var key = await admin.PostAsJsonAsync($"/admin/organizations/{orgId}/api-keys", keyOptions ?? new { name = "test key" });
        key.EnsureSuccessStatusCode();
        var body = await key.Content.ReadFromJsonAsync<JsonElement>();
        return new TestCustomer(orgId, body.GetProperty("id").GetGuid(), body.GetProperty("key").GetString()!, App.GetEndpoint(LaunchTopology.Api, "http"),
            await ApiReplicasAsync());
    }

    /// <summary>Sets a router's behaviour through its control endpoint (fault injection).</summary>
    public async Task SetRouterBehaviourAsync(string router, object behaviour)
    {
        using var client = CreateRouterClient(router);
        (await client.PutAsJsonAsync("/control/behaviour", behaviour)).EnsureSuccessStatusCode();
    }

    public async Task DisposeAsync()
    {
        // Each step runs whatever the one before it threw. Should this process die instead, the
        // orchestrator (DCP) watches it and stops every resource, Postgres and Redis included.
        try
        {
            if (App is not null)
            {
                try
                {
                    using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
                    await App.StopAsync(timeout.Token);
                }
                finally
                {
                    await App.DisposeAsync();
                }
            }
        }
        finally
        {
            try
            {
                if (IdentityProvider is not null) await IdentityProvider.DisposeAsync();
                if (Stripe is not null) await Stripe.DisposeAsync();
            }
            finally
            {
                try { Directory.Delete(_dataDirectory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }
        }
    }
}

/// <summary>
/// Every test class of this collection boots (or shares) the whole AppHost: mark it
/// <c>[Trait("Category", "AppHost")]</c> so the fast loop (<c>--filter "Category!=AppHost"</c>) leaves it out.
/// </summary>
[CollectionDefinition(Name)]
public sealed class PortalAppCollection : ICollectionFixture<PortalAppFixture>
{
    public const string Name = "Portal AppHost";
    public const string Category = "AppHost";
}

public sealed record TestCustomer(Guid OrganizationId, Guid KeyId, string Key, Uri ApiBase, IReadOnlySet<string> Replicas)
{
    /// <summary>A client on one pooled connection: its requests stay on one Api replica.</summary>
    public HttpClient CreateClient()
    {
        var client = new HttpClient { BaseAddress = ApiBase };
        client.DefaultRequestHeaders.Authorization = new("Bearer", Key);
        return client;
    }

    /// <summary>
    /// A client that opens a new connection for every request: the orchestrator's proxy deals new
    /// connections to the replicas in turn, so consecutive requests cross replicas.
    /// </summary>
    public HttpClient CreateClientAcrossReplicas()
    {
        var client = CreateClient();
        client.DefaultRequestHeaders.ConnectionClose = true;
        return client;
    }

    /// <summary>
    /// Sends requests across replicas until every replica has answered <paramref name="perReplica"/> times
    /// (at most 10 per replica): what each replica does is then in the returned responses.
    /// </summary>
    public async Task<List<HttpResponseMessage>> OnEveryReplicaAsync(Func<HttpClient, Task<HttpResponseMessage>> send, int perReplica = 2)
    {
        using var client = CreateClientAcrossReplicas();
        var responses = new List<HttpResponseMessage>();
        for (var i = 0; i < 10 * perReplica * Replicas.Count; i++)
        {
            responses.Add(await send(client));
            if (Replicas.All(r => responses.Count(x => PortalAppFixture.ReplicaOf(x) == r) >= perReplica)) return responses;
        }
        Assert.Fail($"not every replica answered {perReplica} times: {string.Join(", ", responses.Select(PortalAppFixture.ReplicaOf))}");
        return responses;
    }

    /// <summary>
    /// Waits until every replica's latest answer to <paramref name="send"/> is <paramref name="status"/>: a change
    /// an administrator makes reaches the replica that took it at once and the others through Redis a moment later.
    /// </summary>
    public Task WaitUntilEveryReplicaAnswersAsync(Func<HttpClient, Task<HttpResponseMessage>> send, HttpStatusCode status, string message,
        TimeSpan? timeout = null) =>
        WaitUntilEveryReplicaAsync(send, async answer => answer.StatusCode == status ? null : $"{(int)answer.StatusCode} {await answer.Content.ReadAsStringAsync()}",
            message, timeout);

    /// <summary>
    /// Waits until no replica's latest answer to <paramref name="send"/> is found wrong by <paramref name="wrong"/> (what
    /// was wrong with it, or null). The failure names what each replica that was still wrong last answered; a round that
    /// lost a connection or missed a replica is asked again.
    /// </summary>
    public Task WaitUntilEveryReplicaAsync(Func<HttpClient, Task<HttpResponseMessage>> send, Func<HttpResponseMessage, Task<string?>> wrong,
        string message, TimeSpan? timeout = null) =>
        Eventually.WaitForAsync(async () =>
        {
            List<HttpResponseMessage> answers;
            try
            {
                answers = await OnEveryReplicaAsync(send, perReplica: 1);
            }
            catch (Exception ex) when (ex is HttpRequestException or Xunit.Sdk.XunitException)
            {
                return $"asked again after: {ex.Message}";
            }
            var found = new List<string>();
            foreach (var replica in Replicas.Order())
                if (await wrong(answers.Last(a => PortalAppFixture.ReplicaOf(a) == replica)) is { } what) found.Add($"{replica}: {what}");
            return string.Join("; ", found);
        }, found => found.Length == 0, timeout ?? Eventually.Propagation, message, TimeSpan.FromMilliseconds(100));
}

public sealed record TestUser(Guid Id, string Email, string AccessToken, string RefreshToken, Guid OrganizationId, PortalAppFixture App)
{
    public const string Password = "Correct-horse-42";

    /// <summary>A client acting as this user, optionally in another organisation (X-Organization-Id).</summary>
    public HttpClient CreateClient(Guid? organization = null)
    {
        var client = App.CreateClientWithToken(AccessToken);
        if (organization is { } org) client.DefaultRequestHeaders.Add("X-Organization-Id", org.ToString());
        return client;
    }
}
