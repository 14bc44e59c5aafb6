/** Policies several end-to-end tests share. */

/** ghost's published 2368/tcp reachable from the Docker host only. */
export const HOST_ONLY = `version: 1
containers:
  ghost:
    ingress:
      - ports: [2368/tcp]
        from: [host]
`;

/** No groups: moat owns nothing on the host. */
export const EMPTY = 'version: 1\ncontainers: {}\n';
