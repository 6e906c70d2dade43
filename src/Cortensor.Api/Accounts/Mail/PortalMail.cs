using System.ComponentModel.DataAnnotations;
using System.Threading.Channels;
using MailKit.Net.Smtp;
using MailKit.Security;
using Microsoft.Extensions.Options;
using MimeKit;

namespace Cortensor.Api.Accounts.Mail;

/// <summary>
/// The "Mail" configuration section: the SMTP server account mail goes out through, and where the
/// links in it point. In development the AppHost's mail catcher (maildev) is referenced as the
/// connection string <c>mail</c> (<c>smtp://host:port</c>), which fills <see cref="Host"/> and <see cref="Port"/>.
/// </summary>
public sealed class MailOptions
{
    public const string Section = "Mail";
    public const string ConnectionName = "mail";

    [Required(ErrorMessage = "Mail:Host (or the connection string 'mail') must name the SMTP server account mail goes out through.")]
    public string? Host { get; set; }
    [Range(1, 65535)] public int Port { get; set; } = 587;
    /// <summary>Auto: TLS on 465, STARTTLS when the server offers it elsewhere. None only for a local catcher.</summary>
    public SecureSocketOptions Security { get; set; } = SecureSocketOptions.Auto;
    public string? UserName { get; set; }
    public string? Password { get; set; }
    [Required] public string From { get; set; } = "Cortensor Portal <no-reply@cortensor.local>";
    /// <summary>The web dashboard's public address: verification, invitation and reset links open pages there.</summary>
    [Required(ErrorMessage = "Mail:LinkBaseUrl must be the web dashboard's public address (the links in mails open pages there).")]
    public string? LinkBaseUrl { get; set; }

    public string Link(string path, params (string Name, string Value)[] query) =>
        LinkBaseUrl!.TrimEnd('/') + path + (query.Length == 0 ? "" :
            "?" + string.Join("&", query.Select(q => q.Name + "=" + Uri.EscapeDataString(q.Value))));
}

/// <summary>A mail waiting to go out.</summary>
public sealed record PortalMessage(string To, string Subject, string Text);

/// <summary>
/// Mail is handed to a queue and sent by <see cref="MailSender"/>: the request that causes a mail answers in the
/// same time whether or not a mail is sent (sign-up and reset must not reveal which addresses exist), and a
/// slow SMTP server never holds a request. A mail still queued when the process dies is lost; every mail
/// can be asked for again (resend verification, request a reset, invite again).
/// </summary>
public sealed partial class MailOutbox(ILogger<MailOutbox> log)
{
    private readonly Channel<PortalMessage> _queue = Channel.CreateBounded<PortalMessage>(
        new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });

    /// <summary>
    /// Queues the mail, or drops it with an error in the log when 10,000 are already waiting (SMTP down for hours): the
    /// request that asked for it answers as it would have, since every mail can be asked for again, and a full queue
    /// must not turn sign-up, reset and invitations into 500s.
    /// </summary>
    public void Enqueue(PortalMessage message)
    {
        if (!_queue.Writer.TryWrite(message)) Full(log, message.Subject);
    }

    [LoggerMessage(LogLevel.Error, "The mail queue is full (SMTP has been failing): mail '{Subject}' was dropped")]
    private static partial void Full(ILogger logger, string subject);

    internal ChannelReader<PortalMessage> Reader => _queue.Reader;
}

public sealed partial class MailSender(MailOutbox outbox, IOptions<MailOptions> options, ILogger<MailSender> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await foreach (var message in outbox.Reader.ReadAllAsync(stoppingToken))
        {
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    await SendAsync(message, stoppingToken);
                    Log.Sent(log, message.Subject);
                    break;
                }
                // A timeout's TaskCanceledException is a failure to send like any other; only shutting down stops the loop.
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested && attempt < 4)
                {
                    Log.Retrying(log, attempt, ex);
                    await Task.Delay(TimeSpan.FromSeconds(attempt * 2), stoppingToken);
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    Log.Dropped(log, message.Subject, ex);
                    break;
                }
            }
        }
    }

    private async Task SendAsync(PortalMessage message, CancellationToken ct)
    {
        var o = options.Value;
        var mime = new MimeMessage();
        mime.From.Add(MailboxAddress.Parse(o.From));
        mime.To.Add(MailboxAddress.Parse(message.To));
        mime.Subject = message.Subject;
        mime.Body = new TextPart("plain") { Text = message.Text };
        using var smtp = new SmtpClient();
        await smtp.ConnectAsync(o.Host!, o.Port, o.Security, ct);
        if (!string.IsNullOrEmpty(o.UserName)) await smtp.AuthenticateAsync(o.UserName, o.Password ?? "", ct);
        await smtp.SendAsync(mime, ct);
        await smtp.DisconnectAsync(quit: true, ct);
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Sent mail '{Subject}'")]
        public static partial void Sent(ILogger logger, string subject);
        [LoggerMessage(2, LogLevel.Warning, "Sending mail failed (attempt {Attempt}); retrying")]
        public static partial void Retrying(ILogger logger, int attempt, Exception exception);
        [LoggerMessage(3, LogLevel.Error, "Mail '{Subject}' could not be sent and was dropped")]
        public static partial void Dropped(ILogger logger, string subject, Exception exception);
    }
}

public static class PortalMailExtensions
{
    public static WebApplicationBuilder AddPortalMail(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<MailOptions>().BindConfiguration(MailOptions.Section)
            .PostConfigure<IConfiguration>((o, configuration) =>
            {
                // The Aspire way to hand over an endpoint: ConnectionStrings:mail = smtp://host:port.
                if (configuration.GetConnectionString(MailOptions.ConnectionName) is { Length: > 0 } cs && Uri.TryCreate(cs, UriKind.Absolute, out var uri))
                {
                    o.Host = uri.Host;
                    if (uri.Port > 0) o.Port = uri.Port;
                    // A local catcher speaks plain SMTP; a real server is configured with Mail:Host instead.
                    o.Security = uri.Scheme == "smtps" ? SecureSocketOptions.SslOnConnect : SecureSocketOptions.None;
                }
            })
            .ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton<MailOutbox>();
        builder.Services.AddHostedService<MailSender>();
        return builder;
    }
}
