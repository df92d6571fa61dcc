// Registry passwords given with a definition or a function: sealed before they are stored.
import { BerthError } from '../../../common/errors.ts';
import { sealRegistryCredentials, type RegistryCredentials, type SecretBox } from '../../../common/secret-box.ts';

export function sealCredentials(box: SecretBox | null, tenant: string, credentials: RegistryCredentials): RegistryCredentials {
  if (!box) throw new BerthError('SECRETS_KEY_MISSING', 'This API has no secrets key to seal the registry password with (see BERTH_SECRETS_KEY_FILE)');
  return sealRegistryCredentials(box, tenant, credentials);
}
