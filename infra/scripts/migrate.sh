#!/usr/bin/env bash
# azd postdeploy hook of the Api: runs the schema migrations (and the first operator account) as a
# Container Apps job with the image azd just deployed, and waits for it to finish.
set -euo pipefail
: "${AZURE_RESOURCE_GROUP:?run through azd}" "${SERVICE_API_IMAGE_NAME:?run through azd}"
az containerapp job update -n migrations -g "$AZURE_RESOURCE_GROUP" --image "$SERVICE_API_IMAGE_NAME" --args migrate -o none
execution=$(az containerapp job start -n migrations -g "$AZURE_RESOURCE_GROUP" --query name -o tsv)
echo "migrations: execution $execution started"
for _ in $(seq 1 120); do
  status=$(az containerapp job execution show -n migrations -g "$AZURE_RESOURCE_GROUP" --job-execution-name "$execution" --query properties.status -o tsv)
  case "$status" in
    Succeeded) echo "migrations: done"; exit 0 ;;
    Failed|Stopped|Degraded) echo "migrations: $status; see 'az containerapp job logs show -n migrations -g $AZURE_RESOURCE_GROUP --execution $execution'" >&2; exit 1 ;;
  esac
  sleep 5
done
echo "migrations: still $status after 10 minutes" >&2
exit 1
