terraform {
  required_version = ">= 1.5.0"

  # All settings come from -backend-config=tfbackends/{application}-{account_id}-{region}.tfbackend
  backend "s3" {}
}
