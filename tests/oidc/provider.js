// Test-only: a real OpenID provider (the oidc-provider package, pinned in package.json) for the SSO
// browser test. Usage: node provider.js PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI
// Users (any password; the provider's own dev login form): "ana" is in group soc-analysts, "mallory"
// in group marketing (mapped to no socflow role). Prints "ready <issuer>" once listening.
'use strict';

const { Provider } = require('oidc-provider');

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const USERS = {
  ana: { preferred_username: 'ana', name: 'Ana Analyst', email: 'ana@example.test', groups: ['staff', 'soc-analysts'] },
  mallory: { preferred_username: 'mallory', name: 'Mallory', email: 'mallory@example.test', groups: ['marketing'] },
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { methods: ['S256'], required: () => true },
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email'],
    groups: ['groups'],
  },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['socflow-test-oidc-cookie-key'] },
  async findAccount(ctx, id) {
    const user = USERS[id] || { preferred_username: id, groups: [] };
    return { accountId: id, async claims() { return { sub: id, ...user }; } };
  },
});

provider.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
