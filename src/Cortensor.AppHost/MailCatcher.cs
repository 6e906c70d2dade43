namespace Cortensor.AppHost;

/// <summary>
/// Where account mail goes. Locally: maildev (an npm package scripts/setup.sh installs into .tools/maildev),
/// which accepts every message over SMTP and shows it in a web inbox linked from the dashboard; the tests read
/// the same messages from its REST API. Published: the connection string <c>mail</c> (smtp[s]://host:port)
/// names the real SMTP server; its account goes in Mail__UserName / Mail__Password on the Api.
/// </summary>
public static class MailCatcher
{
    public const string Name = "mail";

    public static IResourceBuilder<IResourceWithConnectionString> AddMail(this IDistributedApplicationBuilder builder)
    {
        if (builder.ExecutionContext.IsPublishMode) return builder.AddConnectionString(Name);

        var maildev = FindMailDev(builder.AppHostDirectory);
        return builder.AddResource(new MailDevResource(Name, Path.GetDirectoryName(maildev)!))
            .WithArgs(maildev, "--ip", "127.0.0.1", "--silent")
            .WithEndpoint(name: MailDevResource.SmtpEndpoint, scheme: "tcp", env: "MAILDEV_SMTP_PORT")
            .WithHttpEndpoint(name: "http", env: "MAILDEV_WEB_PORT")
            .WithUrlForEndpoint("http", url => url.DisplayText = "Inbox")
            .WithHttpHealthCheck("/healthz");
    }

    private static string FindMailDev(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, ".tools", "maildev", "node_modules", "maildev", "bin", "maildev");
            if (File.Exists(candidate)) return candidate;
        }
        throw new FileNotFoundException($"maildev is not installed (looked for .tools/maildev above {start}). Run scripts/setup.sh.");
    }
}

/// <summary>maildev as a local process; its connection string is the SMTP address the Api sends to.</summary>
public sealed class MailDevResource(string name, string workingDirectory)
    : ExecutableResource(name, "node", workingDirectory), IResourceWithConnectionString
{
    public const string SmtpEndpoint = "smtp";

    public ReferenceExpression ConnectionStringExpression =>
        ReferenceExpression.Create($"smtp://{new EndpointReference(this, SmtpEndpoint).Property(EndpointProperty.HostAndPort)}");
}
