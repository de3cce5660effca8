import { IConstruct } from 'constructs';
import { TerraformResource } from 'cdktf';

/** The node as a Terraform resource of one of `types`, or undefined. */
export function resourceOfType(node: IConstruct, ...types: string[]): TerraformResource | undefined {
  if (!TerraformResource.isTerraformResource(node)) return undefined;
  const resource = node as TerraformResource;
  return types.includes(resource.terraformResourceType) ? resource : undefined;
}

/** A resource attribute as configured (before tokens resolve), read the way the binding synthesizes it. */
export function configuredAttributes(resource: TerraformResource): Record<string, unknown> {
  // synthesizeAttributes() is the binding's own mapping of props to Terraform attribute names.
  return (resource as unknown as { synthesizeAttributes(): Record<string, unknown> }).synthesizeAttributes();
}

/** Whether `lifecycle { prevent_destroy = true }` is set on the resource. */
export function preventsDestroy(resource: TerraformResource): boolean {
  return resource.lifecycle?.preventDestroy === true;
}
