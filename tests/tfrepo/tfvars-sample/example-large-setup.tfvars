######################################################################
## General configuration
######################################################################
# Large setup: 13-23 ECS services, about $800-1,500/month. Adds high availability and monitoring.
# Copy to tfvars/{application}-{account_id}-{region}.tfvars and change every CHANGE_ME_PLEASE.

account_id  = "253650698585" # CHANGE_ME_PLEASE
region      = "us-east-1"    # CHANGE_ME_PLEASE
application = "web"          # CHANGE_ME_PLEASE
environment = "dev"          # CHANGE_ME_PLEASE

additional_tags          = {}
ignore_tags_keys         = ["AutoCreateDate", "AutoCreatedBy", "AutoRoleName", "IAM User Name"]
ignore_tags_key_prefixes = []

######################################################################
## VPC configuration
######################################################################

vpc_cidr_block                        = "10.0.0.0/16"
vpc_enable_high_available_nat_gateway = true # one NAT gateway per AZ
vpc_flow_log_enable                   = true
vpc_flow_log_retention_days           = 365
vpc_endpoints_create                  = true
vpc_endpoint_services                 = ["sts", "ecr.api", "ecr.dkr", "ecs", "logs", "secretsmanager"]

######################################################################
## ECS configuration
######################################################################

ecs_cloudwatch_log_group_retention_in_days = 365
ecs_enable_alb_deletion_protection         = true

ecs_services = {
  test-nginx = {
    desired_count = 2
    is_alb_target = true
    need_ecr_repo = false
    alb_path      = "/"
    permissions = {
      rds         = true
      elasticache = true
      docdb       = true
    }
    container_definitions = [
      {
        name              = "test-nginx"
        image             = "public.ecr.aws/nginx/nginx:latest"
        cpu               = 1024
        memory            = 2048
        open_ports        = [80]
        health_check_path = "/"
      }
    ]
    autoscaling = {
      min_capacity     = 2
      max_capacity     = 6
      cpu_target_value = 70
    }
  }
}

ecs_alarms = {
  availability = { threshold = 1 }
  cpu          = { threshold = 80 }
  memory       = { threshold = 80 }
}
alb_alarms = {
  web_error_rate   = { threshold = 5 }
  web_request_time = { threshold = 2 }
}
rds_alarms = {
  cpu = { threshold = 80 }
}
elasticache_alarms = {
  cpu = { threshold = 80 }
}

######################################################################
## RDS configuration
######################################################################

rds_create_cluster                   = true
rds_engine                           = "aurora-postgresql"
rds_instance_class                   = "db.m8g.large"
rds_instance_count                   = 2 # Multi-AZ writer + reader
rds_deletion_protection              = true
rds_performance_insights_enabled     = true
rds_create_cloudwatch_log_group      = true
rds_enabled_cloudwatch_logs_exports  = ["postgresql"]
rds_create_monitoring_role           = true
rds_monitoring_interval              = 60

######################################################################
## ElastiCache, DocumentDB, EFS, bastion and VPN configuration
######################################################################

elasticache_create_instance = true
elasticache_node_type       = "cache.m7g.large"
docdb_create                = true
efs_create                  = true
bastion_create              = false # use the VPN instead
vpn_create                  = true

######################################################################
## Route53 configuration
######################################################################

route53_dns_name           = "CHANGE_ME_PLEASE.example.com" # CHANGE_ME_PLEASE
route53_backend_subdomain  = "api"
route53_frontend_subdomain = "www"
uri_backend_path           = "/"

######################################################################
## Monitoring and backup configuration
######################################################################

sns_monitoring_recepients_email_list = ["CHANGE_ME_PLEASE"] # CHANGE_ME_PLEASE
backup_services = {
  rds   = true
  docdb = true
  efs   = true
  s3    = true
  ec2   = true
  ecs   = true
}
