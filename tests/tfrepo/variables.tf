# Inputs of poc-idp (santyar0/poc-idp) as documented in the poc-idp guides, for ecs-deploy-bot's tests.
# Types, defaults and validation blocks follow ../../shared/reference/poc-idp-inputs.md §2, §4 and §5.
# Where a default is undocumented, a neutral value is chosen and marked "[unknown]".

######################################################################
## General configuration
######################################################################

variable "region" {
  description = "AWS region for all resources"
  type        = string
  default     = "us-east-1"
}

variable "account_id" {
  description = "AWS account id (12 digits), used in IAM ARNs"
  type        = string
}

variable "environment" {
  description = "Environment name, used in names and tags"
  type        = string
  default     = "dev"
}

variable "application" {
  description = "Application name, used in names and tags"
  type        = string
  default     = ""
}

variable "assume_role_name" {
  description = "Role the provider assumes when not empty"
  type        = string
  default     = ""
}

variable "additional_tags" {
  description = "Tags merged into some tag sets"
  type        = map(string)
  default     = {}
}

variable "ignore_tags_keys" {
  description = "Tag keys the provider ignores"
  type        = list(string)
  default     = []
}

variable "ignore_tags_key_prefixes" {
  description = "Tag key prefixes the provider ignores"
  type        = list(string)
  default     = []
}

######################################################################
## ECS, ALB and ECR configuration
######################################################################

variable "ecs_services" {
  description = "ECS services keyed by service name"
  type = map(object({
    desired_count          = optional(number, 1)
    is_alb_target          = bool
    need_ecr_repo          = bool
    alb_path               = optional(string)
    task_role_arn          = optional(string)
    enable_execute_command = optional(bool, false)
    execution_role_arn     = optional(string, null)
    permissions = optional(object({
      elasticache = optional(bool, false)
      rds         = optional(bool, false)
      efs         = optional(bool, false)
      docdb       = optional(bool, false)
      s3          = optional(bool, false)
    }), {})
    extra_secrets = optional(list(object({
      name      = string
      valueFrom = string
    })), [])
    container_definitions = list(object({
      name                       = string
      image                      = string
      registry_access_secret_arn = optional(string)
      cpu                        = number
      memory                     = number
      health_check_path          = optional(string, "/")
      essential                  = optional(bool, true)
      command                    = optional(list(string))
      open_ports                 = list(number)
      environment                = optional(any, {})
    }))
    autoscaling = optional(object({
      min_capacity        = number
      max_capacity        = number
      cpu_target_value    = optional(number)
      memory_target_value = optional(number)
      scale_in_cooldown   = optional(number, 300)
      scale_out_cooldown  = optional(number, 60)
    }))
  }))
  default = {}

  validation {
    # Fargate cpu/memory pairs, checked per container (poc-idp-inputs §5).
    condition = alltrue(flatten([
      for service in values(var.ecs_services) : [
        for container in service.container_definitions : contains(lookup({
          "256"  = [512, 1024]
          "512"  = [1024, 2048]
          "1024" = [2048, 3072, 4096]
          "2048" = [for m in range(4096, 8193, 1024) : m]
          "4096" = [for m in range(8192, 30721, 1024) : m]
        }, tostring(container.cpu), []), container.memory)
      ]
    ]))
    error_message = "Each container needs a valid Fargate cpu/memory pair: 256 (512, 1024), 512 (1024, 2048), 1024 (2048-4096), 2048 (4096-8192), 4096 (8192-30720), memory in steps of 1024."
  }

  validation {
    condition = length([for s in values(var.ecs_services) : s.alb_path if s.alb_path != null]) == length(distinct([
      for s in values(var.ecs_services) : s.alb_path if s.alb_path != null
    ]))
    error_message = "The alb_path of each ECS service must be unique."
  }
}

variable "ecs_cloudwatch_log_group_retention_in_days" {
  description = "Retention of the ECS log groups"
  type        = number
  default     = 7
}

variable "ecs_enable_alb_deletion_protection" {
  description = "Deletion protection on the ALB"
  type        = bool
  default     = false
}

variable "ecs_alarms" {
  description = "ECS alarms (shape [unknown])"
  type        = any
  default     = {}
}

variable "alb_alarms" {
  description = "ALB alarms (shape [unknown])"
  type        = any
  default     = {}
}

variable "ecr_image_mutability" {
  description = "ECR image tag mutability"
  type        = string
  default     = "IMMUTABLE"

  validation {
    condition     = contains(["IMMUTABLE", "MUTABLE"], var.ecr_image_mutability)
    error_message = "ecr_image_mutability must be IMMUTABLE or MUTABLE."
  }
}

variable "ecr_allow_forced_delete" {
  description = "ECR force_delete"
  type        = bool
  default     = false
}

######################################################################
## RDS Aurora configuration
######################################################################

variable "rds_create_cluster" {
  type    = bool
  default = true
}

variable "rds_instance_class" {
  type    = string
  default = "db.t4g.medium" # [unknown]
}

variable "rds_instance_count" {
  type    = number
  default = 1 # [unknown]
}

variable "rds_engine" {
  type    = string
  default = "aurora-postgresql" # [unknown]
}

variable "rds_engine_version" {
  description = "Empty = latest"
  type        = string
  default     = ""
}

variable "rds_family" {
  description = "Empty = derived from the engine version"
  type        = string
  default     = ""
}

variable "rds_performance_insights_enabled" {
  type    = bool
  default = false
}

variable "rds_deletion_protection" {
  type    = bool
  default = false
}

# Not a poc-idp input: a sensitive value, so tests can check that it is never stored or shown in clear
# (a plan file embeds the configuration and every planned value). Tests read the value from here.
variable "rds_master_password" {
  type      = string
  default   = "canary-rds-master-pw-7Qx9Lm2Zr"
  sensitive = true
}

variable "rds_storage_type" {
  type    = string
  default = ""
}

variable "rds_parameters" {
  type    = list(any)
  default = []
}

variable "rds_iam_database_authentication_enabled" {
  type    = bool
  default = false
}

variable "rds_allow_major_version_upgrade" {
  type    = bool
  default = false
}

variable "rds_apply_immediately" {
  type    = bool
  default = false
}

variable "rds_create_monitoring_role" {
  type    = bool
  default = false
}

variable "rds_create_cloudwatch_log_group" {
  type    = bool
  default = false
}

variable "rds_monitoring_interval" {
  type    = number
  default = 0
}

variable "rds_cloudwatch_log_group_retention_in_days" {
  type    = number
  default = 7
}

variable "rds_monitoring_role_arn" {
  type    = string
  default = ""
}

variable "rds_database_insights_mode" {
  type    = string
  default = "standard"
}

variable "rds_enabled_cloudwatch_logs_exports" {
  type    = list(string)
  default = []
}

variable "rds_alarms" {
  type    = any
  default = {}
}

######################################################################
## ElastiCache, EFS, DocumentDB, bastion, VPN, S3 and KMS configuration
######################################################################

variable "elasticache_create_instance" {
  description = "Create the ElastiCache Redis replication group"
  type        = bool
  default     = true
}

variable "elasticache_node_type" {
  type    = string
  default = "cache.t4g.medium" # [unknown]
}

variable "elasticache_alarms" {
  type    = any
  default = {}
}

variable "efs_create" {
  type    = bool
  default = true
}

variable "docdb_create" {
  type    = bool
  default = false
}

variable "bastion_create" {
  type    = bool
  default = true
}

variable "bastion_associate_public_ip_address" {
  type    = bool
  default = false
}

variable "bastion_ssh_key_name" {
  type    = string
  default = ""
}

variable "vpn_create" {
  type    = bool
  default = false
}

variable "s3_create_user_data_bucket" {
  type    = bool
  default = true
}

variable "s3_create_frontend_bucket" {
  type    = bool
  default = true
}

variable "kms_create_shared_key" {
  type    = bool
  default = true
}

######################################################################
## VPC configuration
######################################################################

variable "vpc_id" {
  description = "Adopt an existing VPC instead of creating one (empty = create)"
  type        = string
  default     = ""
  nullable    = false
}

variable "vpc_cidr_block" {
  type    = string
  default = "10.0.0.0/16"
}

variable "vpc_enable_high_available_nat_gateway" {
  description = "true = one NAT gateway per AZ (3); false = one"
  type        = bool
  default     = false
}

variable "vpc_flow_log_enable" {
  type    = bool
  default = false
}

variable "vpc_flow_log_destination_arn" {
  type    = string
  default = ""
}

variable "vpc_flow_log_retention_days" {
  type    = number
  default = 30
}

variable "vpc_endpoints_create" {
  type    = bool
  default = true
}

variable "vpc_endpoint_services" {
  type    = list(string)
  default = []
}

######################################################################
## Route53, ACM, CloudFront and URI configuration
######################################################################

variable "route53_dns_name" {
  type    = string
  default = "" # [unknown]
}

variable "route53_backend_subdomain" {
  type    = string
  default = "api" # [unknown]
}

variable "route53_frontend_subdomain" {
  type    = string
  default = "www" # [unknown]
}

variable "route53_create_zone" {
  type    = bool
  default = false
}

variable "route53_configure_dns" {
  type    = bool
  default = true
}

variable "route53_enforce_acm_certificate_validation" {
  type    = bool
  default = true
}

variable "route53_existing_certificate_arn" {
  description = "Existing ACM certificate for the ALB (in var.region), or empty"
  type        = string
  default     = ""

  validation {
    condition     = var.route53_existing_certificate_arn == "" || strcontains(var.route53_existing_certificate_arn, var.region)
    error_message = "route53_existing_certificate_arn must be empty or an ACM certificate ARN in var.region."
  }
}

variable "route53_existing_cloudfront_certificate_arn" {
  description = "Existing ACM certificate for CloudFront (must be in us-east-1), or empty"
  type        = string
  default     = ""

  validation {
    condition     = var.route53_existing_cloudfront_certificate_arn == "" || strcontains(var.route53_existing_cloudfront_certificate_arn, "us-east-1")
    error_message = "route53_existing_cloudfront_certificate_arn must be empty or an ACM certificate ARN in us-east-1."
  }
}

variable "route53_health_check_endpoint" {
  type    = any
  default = {}
}

variable "cloudfront_price_class" {
  type    = string
  default = "PriceClass_200"

  validation {
    condition     = contains(["PriceClass_100", "PriceClass_200", "PriceClass_All"], var.cloudfront_price_class)
    error_message = "cloudfront_price_class must be PriceClass_100, PriceClass_200 or PriceClass_All."
  }
}

variable "cloudfront_alarms" {
  type    = any
  default = {}
}

variable "uri_frontend_path" {
  type    = string
  default = "/"

  validation {
    condition     = startswith(var.uri_frontend_path, "/")
    error_message = "uri_frontend_path must start with \"/\"."
  }
}

variable "uri_backend_path" {
  type    = string
  default = "/api"

  validation {
    condition     = startswith(var.uri_backend_path, "/")
    error_message = "uri_backend_path must start with \"/\"."
  }

  validation {
    condition     = var.route53_backend_subdomain != var.route53_frontend_subdomain || var.uri_backend_path != var.uri_frontend_path
    error_message = "uri_backend_path must differ from uri_frontend_path when the backend and frontend subdomains are equal."
  }
}

######################################################################
## Monitoring and backup configuration
######################################################################

variable "sns_monitoring_recepients_email_list" {
  description = "Email addresses notified by the alarms"
  type        = list(string)
  default     = []

  validation {
    # Written as an implication: when any alarm or health check is defined, at least one email is needed.
    condition = length(var.sns_monitoring_recepients_email_list) > 0 || (
      length(var.rds_alarms) == 0 && length(var.elasticache_alarms) == 0 && length(var.ecs_alarms) == 0 &&
      length(var.alb_alarms) == 0 && length(var.cloudfront_alarms) == 0 && length(var.route53_health_check_endpoint) == 0
    )
    error_message = "sns_monitoring_recepients_email_list should be defined when alarms are defined."
  }
}

variable "backup_services" {
  type    = any
  default = {}
}
