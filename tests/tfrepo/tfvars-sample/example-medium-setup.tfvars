######################################################################
## General configuration
######################################################################
# Medium setup: 5-13 ECS services, about $200-400/month. Adds caching and the document DB.
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
vpc_enable_high_available_nat_gateway = false # one NAT gateway
vpc_flow_log_enable                   = false
vpc_endpoints_create                  = true
vpc_endpoint_services                 = ["sts"]

######################################################################
## ECS configuration
######################################################################

ecs_cloudwatch_log_group_retention_in_days = 30
ecs_enable_alb_deletion_protection         = true

ecs_services = {
  test-nginx = {
    desired_count = 1
    is_alb_target = true
    need_ecr_repo = false
    alb_path      = "/"
    permissions = {
      rds         = true
      elasticache = true
    }
    container_definitions = [
      {
        name              = "test-nginx"
        image             = "public.ecr.aws/nginx/nginx:latest"
        cpu               = 512
        memory            = 1024
        open_ports        = [80]
        health_check_path = "/"
      }
    ]
  }
}

ecs_alarms = {
  availability = { threshold = 1 }
}
alb_alarms = {
  web_error_rate   = { threshold = 5 }
  web_request_time = { threshold = 2 }
}

######################################################################
## RDS configuration
######################################################################

rds_create_cluster      = true
rds_engine              = "aurora-postgresql"
rds_instance_class      = "db.t4g.medium"
rds_instance_count      = 2 # writer + reader
rds_deletion_protection = true

######################################################################
## ElastiCache, DocumentDB, EFS and bastion configuration
######################################################################

elasticache_create_instance         = true
elasticache_node_type               = "cache.t4g.medium"
docdb_create                        = true
efs_create                          = true
bastion_create                      = true
bastion_associate_public_ip_address = true
vpn_create                          = false

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
}
