using Cortensor.Api.Catalog;
using Cortensor.Api.Data;
using Cortensor.Api.Infrastructure;
using Scalar.AspNetCore;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddPortalJson();
builder.AddPortalDatabase();
builder.AddRedisClient(LaunchTopology.Redis);
builder.AddCatalog();
builder.Services.AddOpenApi();

var app = builder.Build();

if (PortalDatabase.IsMigrateCommand(args))
{
    await PortalDatabase.MigrateAsync(app.Services);
    return;
}

app.MapDefaultEndpoints();
app.MapOpenApi();
app.MapScalarApiReference("/reference");
app.MapCatalogApi();

app.Run();

public partial class Program;
