output "setup_id" {
  description = "The 6-character suffix of every name"
  value       = terraform_data.setup.output
}

output "vpc_id" {
  value = local.create_vpc ? "vpc-${substr(sha1(terraform_data.vpc[0].id), 0, 17)}" : var.vpc_id
}

output "vpc_cidr_block" {
  value = var.vpc_cidr_block
}

output "ecs_cluster_name" {
  value = terraform_data.ecs_cluster.output
}

output "ecs_service_names" {
  value = { for name, service in terraform_data.ecs_service : name => service.output.name }
}

output "alb_dns_name" {
  value = "${terraform_data.alb.output.name}-${substr(sha1(terraform_data.alb.id), 0, 10)}.${var.region}.elb.amazonaws.com"
}

output "database_endpoint" {
  value = var.rds_create_cluster ? "${terraform_data.rds_cluster[0].output.name}.cluster-${substr(terraform_data.setup.output, 0, 6)}.${var.region}.rds.amazonaws.com" : null
}

output "database_password" {
  value     = terraform_data.database_password.output
  sensitive = true
}
