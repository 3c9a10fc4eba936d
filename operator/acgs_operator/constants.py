"""Names shared by the API, the builders and the handlers."""

from acgs_contract.constitution import CONSTITUTIONAL_HASH

GROUP = "acgs.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "acgs"

# The hash of the constitution the seeds were written against (the contract's). The operator's
# configuration may override it (ACGS_CONSTITUTIONAL_HASH), e.g. when the constitution is amended.
DEFAULT_CONSTITUTIONAL_HASH = CONSTITUTIONAL_HASH

FIELD_MANAGER = "acgs-operator"

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_HASH = "acgs.io/constitutional-hash"
LABEL_OWNER_KIND = "acgs.io/owner-kind"
LABEL_OWNER_NAME = "acgs.io/owner-name"
