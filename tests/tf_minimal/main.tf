# A tiny configuration for the runner tests: built-in resources only (no provider downloads),
# an empty S3 backend filled from a .tfbackend file, like poc-idp's backend.tf.
terraform {
  backend "s3" {}
}

variable "name" {
  type        = string
  description = "A value the resources carry; change it to make a new plan."
}

variable "hang_seconds" {
  type        = number
  default     = 0
  description = "When > 0, a local-exec provisioner sleeps this long during apply (timeout/cancel tests)."
}

variable "ignore_sigint" {
  type        = bool
  default     = false
  description = "Make the hanging provisioner ignore SIGINT, so only SIGKILL stops the run."
}

resource "terraform_data" "first" {
  input = var.name
}

resource "terraform_data" "second" {
  input = "${var.name}-second"
}

resource "terraform_data" "third" {
  input = terraform_data.first.output
}

resource "terraform_data" "hang" {
  count = var.hang_seconds > 0 ? 1 : 0
  input = var.hang_seconds

  provisioner "local-exec" {
    command = "${var.ignore_sigint ? "trap '' INT TERM; " : ""}echo hanging; sleep ${var.hang_seconds}"
  }
}

output "name" {
  value = terraform_data.third.output
}
