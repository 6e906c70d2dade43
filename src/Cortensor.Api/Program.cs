using Cortensor.Api.Accounts;
using Cortensor.Api.Admin;
using Cortensor.Api.Billing;
using Cortensor.Api.Catalog;
using Cortensor.Api.ControlPlane;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.Idempotency;
using Cortensor.Api.Inference;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Keys;
using Cortensor.Api.Limits;
using Cortensor.Api.Metering;
using Cortensor.Api.Routing;

// Customers' JSON schemas bring their own 'pattern's, checked against model output on the hot path: no regex in this
// process may backtrack for longer than this (the default is for ever). Set before any Regex is built.
AppContext.SetData("REGEX_DEFAULT_MATCH_TIMEOUT", TimeSpan.FromSeconds(1));

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddDeploymentSecrets();
builder.AddPortalJson();
builder.AddPortalDatabase();
builder.AddPortalRedis();
builder.AddAccounts();
builder.AddControlPlane();
builder.AddBilling();
builder.AddCatalog();
builder.AddKeys();
builder.AddLimits();
builder.AddRouting();
builder.AddInference();
builder.AddIdempotency();
builder.AddMetering();
builder.AddPortalMetrics();
builder.AddErrorHandling();
builder.AddPortalOpenApi();

var app = builder.Build();

if (PortalDatabase.IsMigrateCommand(args))
{
    // No host starts here, so the secrets are judged explicitly; settings of features that do not run
    // here (mail, routing) are the serving Api's to validate.
    _ = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<DeploymentSecrets>>().Value;
    await PortalDatabase.MigrateAsync(app.Services);
    await AdminAccount.EnsureAsync(app.Services);
    AccountsExtensions.EnsureLinkSigningKeys(app.Services);
    return;
}

app.UseClientAddresses();
app.UseReplicaId();
app.UseRequestId();
app.UseErrorHandling();
app.UseControlPlaneInput();
app.UseAuthThrottling();
// Named here, after the request id: left to the host, they run first, and their 401s and 403s had no request id.
app.UseAuthentication();
app.UseAuthorization();
app.MapDefaultEndpoints();
app.UsePortalMetrics();
app.MapPortalOpenApi();
app.MapPortalReference();
app.MapInferenceApi();
app.MapCatalogApi();
app.MapControlPlaneApi();
app.MapBilling();
app.MapAdminApi();

app.Run();

public partial class Program;
