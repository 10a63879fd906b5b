# A stand-in for poc-idp's resources, built from the built-in terraform_data resource only (no providers
# can be downloaded on the test machines). Counts follow the same flags as poc-idp; names follow its
# pattern ${substr(application,0,A)}-${substr(environment,0,E)}-{descriptor}-${random_string.setup.id}.

locals {
  # Short names (A = 21, E = 4) and medium names (A = 38, E = 5), poc-idp-inputs §6.
  short_prefix  = "${substr(var.application, 0, 21)}-${substr(var.environment, 0, 4)}"
  medium_prefix = "${substr(var.application, 0, 38)}-${substr(var.environment, 0, 5)}"
  setup_id      = terraform_data.setup.output

  azs             = [for suffix in ["a", "b", "c"] : "${var.region}${suffix}"]
  base_cidr_block = var.vpc_cidr_block
  create_vpc      = var.vpc_id == ""

  tags = merge(var.additional_tags, {
    environment      = var.environment
    application      = var.application
    managed_by       = "terraform"
    terraform_module = "ecs-typical-cluster"
  })

  ecr_services = { for name, service in var.ecs_services : name => service if service.need_ecr_repo }
  endpoint_services = var.vpc_endpoints_create ? toset(concat(["s3"], var.vpc_endpoint_services)) : toset([])
}

# Stands in for random_string.setup: 6 lowercase letters/digits, fixed per account/region/app/env.
resource "terraform_data" "setup" {
  input = substr(sha1("${var.account_id}/${var.region}/${var.application}/${var.environment}"), 0, 6)
}

## VPC

resource "terraform_data" "vpc" {
  count = local.create_vpc ? 1 : 0
  input = {
    name       = "${local.short_prefix}-vpc-${local.setup_id}"
    cidr_block = local.base_cidr_block
    tags       = local.tags
  }
}

resource "terraform_data" "public_subnet" {
  count = 3
  input = {
    name              = "${local.short_prefix}-public-${local.azs[count.index]}-${local.setup_id}"
    availability_zone = local.azs[count.index]
    cidr_block        = cidrsubnet(local.base_cidr_block, 4, count.index)
  }
}

resource "terraform_data" "private_subnet" {
  count = 3
  input = {
    name              = "${local.short_prefix}-private-${local.azs[count.index]}-${local.setup_id}"
    availability_zone = local.azs[count.index]
    cidr_block        = cidrsubnet(local.base_cidr_block, 4, count.index + 3)
  }
}

resource "terraform_data" "database_subnet" {
  count = 3
  input = {
    name              = "${local.short_prefix}-database-${local.azs[count.index]}-${local.setup_id}"
    availability_zone = local.azs[count.index]
    cidr_block        = cidrsubnet(local.base_cidr_block, 4, count.index + 6)
  }
}

resource "terraform_data" "nat_gateway" {
  count = var.vpc_enable_high_available_nat_gateway ? 3 : 1
  input = {
    name              = "${local.short_prefix}-nat-${local.azs[count.index]}-${local.setup_id}"
    availability_zone = local.azs[count.index]
  }
}

resource "terraform_data" "vpc_endpoint" {
  for_each = local.endpoint_services
  input    = "${local.medium_prefix}-vpce-${replace(each.key, ".", "-")}-${local.setup_id}"
}

resource "terraform_data" "flow_log" {
  count = var.vpc_flow_log_enable ? 1 : 0
  input = {
    name           = "${local.medium_prefix}-flowlog-${local.setup_id}"
    retention_days = var.vpc_flow_log_retention_days
  }
}

## ECS, ALB and ECR

resource "terraform_data" "ecs_cluster" {
  input = "${local.short_prefix}-ecs-${local.setup_id}"
}

resource "terraform_data" "ecs_service" {
  for_each = var.ecs_services
  input = {
    name          = "${local.short_prefix}-${each.key}-${local.setup_id}"
    cluster       = terraform_data.ecs_cluster.output
    desired_count = each.value.desired_count
    task_cpu      = sum([for c in each.value.container_definitions : c.cpu])
    task_memory   = sum([for c in each.value.container_definitions : c.memory])
    alb_path      = each.value.alb_path
  }
}

resource "terraform_data" "ecr_repository" {
  for_each = local.ecr_services
  input    = "${local.medium_prefix}-${each.key}-ecr-${local.setup_id}"
}

resource "terraform_data" "alb" {
  input = {
    name                = "${local.short_prefix}-ecsalb-${local.setup_id}"
    deletion_protection = var.ecs_enable_alb_deletion_protection
  }
}

## Databases

resource "terraform_data" "database_password" {
  input = sha256("${var.account_id}/${var.application}/${var.environment}/${terraform_data.setup.output}")
}

resource "terraform_data" "rds_cluster" {
  count = var.rds_create_cluster ? 1 : 0
  input = {
    name                = "${local.medium_prefix}-database-${local.setup_id}"
    engine              = var.rds_engine
    deletion_protection = var.rds_deletion_protection
    master_password     = var.rds_master_password
  }
}

resource "terraform_data" "rds_instance" {
  count = var.rds_create_cluster ? var.rds_instance_count : 0
  input = {
    name           = "${local.medium_prefix}-database-${count.index + 1}-${local.setup_id}"
    instance_class = var.rds_instance_class
  }
}

resource "terraform_data" "elasticache" {
  count = var.elasticache_create_instance ? 1 : 0
  input = {
    name      = "${substr(var.application, 0, 21)}-${substr(var.environment, 0, 5)}-cache-${local.setup_id}"
    node_type = var.elasticache_node_type
  }
}

resource "terraform_data" "docdb" {
  count = var.docdb_create ? 1 : 0
  input = "${local.medium_prefix}-docdb-${local.setup_id}"
}

## Storage, access and keys

resource "terraform_data" "efs" {
  count = var.efs_create ? 1 : 0
  input = "${local.medium_prefix}-efs-${local.setup_id}"
}

resource "terraform_data" "bastion" {
  count = var.bastion_create ? 1 : 0
  input = {
    name                = "${local.medium_prefix}-bastion-${local.setup_id}"
    associate_public_ip = var.bastion_associate_public_ip_address
  }
}

resource "terraform_data" "vpn" {
  count = var.vpn_create ? 1 : 0
  input = "${local.medium_prefix}-vpn-${local.setup_id}"
}

resource "terraform_data" "s3_user_data_bucket" {
  count = var.s3_create_user_data_bucket ? 1 : 0
  input = lower("${local.medium_prefix}-user-data-${local.setup_id}")
}

resource "terraform_data" "s3_frontend_bucket" {
  count = var.s3_create_frontend_bucket ? 1 : 0
  input = lower("${local.medium_prefix}-frontend-${local.setup_id}")
}

resource "terraform_data" "kms_key" {
  count = var.kms_create_shared_key ? 1 : 0
  input = "alias/${local.medium_prefix}-shared-${local.setup_id}"
}

resource "terraform_data" "sns_topic" {
  input = {
    name       = "${local.medium_prefix}-sns-${local.setup_id}"
    recipients = var.sns_monitoring_recepients_email_list
  }
}
