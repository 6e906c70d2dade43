using Cortensor.Api.Accounts;
using Cortensor.Api.Admin;
using Cortensor.Api.Catalog;
using Cortensor.Api.ControlPlane;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.Inference;
using Cortensor.Api.Infrastructure;
using Scalar.AspNetCore;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddDeploymentSecrets();
builder.AddPortalJson();
builder.AddPortalDatabase();
builder.AddPortalRedis();
builder.AddAccounts();
builder.AddCatalog();
builder.AddEnforcement();
builder.AddInference();
builder.AddMetering();
builder.AddErrorHandling();
builder.AddPortalOpenApi();

var app = builder.Build();

if (PortalDatabase.IsMigrateCommand(args))
{
    // No host starts here, so the start-up validation (secrets, options) runs explicitly.
    app.Services.GetRequiredService<Microsoft.Extensions.Options.IStartupValidator>().Validate();
    await PortalDatabase.MigrateAsync(app.Services);
    await AdminAccount.EnsureAsync(app.Services);
    return;
}

app.UseRequestId();
app.UseErrorHandling();
app.MapDefaultEndpoints();
app.MapPortalOpenApi();
app.MapScalarApiReference("/reference");
app.MapInferenceApi();
app.MapCatalogApi();
app.MapControlPlaneApi();
app.MapAdminApi();

app.Run();

public partial class Program;
