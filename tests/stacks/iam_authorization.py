"""A small IAM policy evaluator, and the synthesized templates' policies as concrete statements.

It decides one request at a time: a principal (a role of the stack, or an AWS service), one action,
one resource ARN (`*` when the request names none) and the request context (condition keys, each a
tuple of values). The rules it applies, and nothing more:
- an explicit Deny in any policy that applies wins;
- otherwise an Allow in the role's identity policies, or an Allow in the resource's policy that
  names the principal itself, allows (same-account principals);
- a KMS key policy and a role's trust policy must allow by themselves: naming the account root
  (`arn:aws:iam::ACCOUNT:root`) only delegates to the identity policies, which then must allow too;
- an AWS service principal is allowed only by a resource policy (it has no identity policy).

Statements: Effect, Principal (`*`, AWS, Service), Action/NotAction, Resource/NotResource with `*`
and `?` wildcards, and Condition with the String*, Arn*, Bool and Null operators, their `IfExists`
forms, and `ForAnyValue:`/`ForAllValues:` for multi-valued keys. A missing key fails a condition,
except for negated operators (`StringNotEquals`, ...), `...IfExists` and `ForAllValues:`. Anything
else (NotPrincipal, numeric or date operators, policy variables) raises `UnsupportedPolicyError`, so that a
policy this evaluator cannot read never passes by accident.

`DeployedTemplate` resolves a synthesized template's intrinsics (Ref, Fn::GetAtt, Fn::Join, Fn::Sub,
Fn::Select, Fn::Split and the pseudo parameters) with a fixed account and region, so that ARNs in
policies compare with ARNs of requests, and reads identity and resource policies from it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Context = Mapping[str, tuple[str, ...]]


class UnsupportedPolicyError(Exception):
    """A policy or template construct this evaluator does not model."""


# --------------------------------------------------------------------------------------------------
# Requests and statements
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """Who asks: a role (`kind` "role", `name` its ARN) or an AWS service (`name` e.g. "sns.amazonaws.com")."""

    kind: Literal["role", "service"]
    name: str
    account: str

    def __str__(self) -> str:
        return self.name if self.kind == "role" else f"service {self.name}"


@dataclass(frozen=True)
class Request:
    principal: Principal
    action: str
    resource: str
    context: Context = field(default_factory=dict)

    def describe(self) -> str:
        keys = ", ".join(f"{key}={'|'.join(values)}" for key, values in sorted(self.context.items()))
        return f"{self.principal}: {self.action} on {self.resource} (context: {keys or 'none'})"


@dataclass(frozen=True)
class Statement:
    policy: str  # where it comes from, for messages: "identity DataStagingRoleDefaultPolicy"
    sid: str
    effect: Literal["Allow", "Deny"]
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    principals: Mapping[str, tuple[str, ...]] | None = None  # resource policies only
    conditions: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.policy} [{self.sid or 'no Sid'}] {self.effect}"


def _strings(value: Any) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    out = []
    for item in values:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, str | int | float):
            out.append(str(item))
        else:
            raise UnsupportedPolicyError(f"policy value {item!r} is not a string (unresolved intrinsic?)")
    return tuple(out)


def parse_statements(policy: str, document: Mapping[str, Any], *, resource_policy: bool) -> list[Statement]:
    """The statements of a (resolved) policy document."""
    raw = document.get("Statement", [])
    statements = []
    for entry in raw if isinstance(raw, list) else [raw]:
        unknown = (
            set(entry)
            - {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource"}
            - {
                "Principal",
                "Condition",
            }
        )
        if unknown:
            raise UnsupportedPolicyError(f"{policy}: statement elements {sorted(unknown)} are not modelled")
        principals: dict[str, tuple[str, ...]] | None = None
        if resource_policy:
            principal = entry.get("Principal")
            if principal is None:
                raise UnsupportedPolicyError(f"{policy}: a resource policy statement without Principal")
            if principal == "*":
                principals = {"AWS": ("*",)}
            else:
                principals = {kind: _strings(value) for kind, value in principal.items()}
                if set(principals) - {"AWS", "Service"}:
                    raise UnsupportedPolicyError(
                        f"{policy}: principal kinds {sorted(principals)} are not modelled"
                    )
        elif "Principal" in entry:
            raise UnsupportedPolicyError(f"{policy}: an identity policy statement with a Principal")
        conditions = {
            operator: {key: _strings(values) for key, values in block.items()}
            for operator, block in (entry.get("Condition") or {}).items()
        }
        for operator in conditions:
            _parse_operator(operator)  # raises for operators that are not modelled
        effect = entry["Effect"]
        if effect not in ("Allow", "Deny"):
            raise UnsupportedPolicyError(f"{policy}: Effect {effect!r}")
        statement = Statement(
            policy=policy,
            sid=str(entry.get("Sid", "")),
            effect=effect,
            actions=_strings(entry["Action"]) if "Action" in entry else (),
            not_actions=_strings(entry["NotAction"]) if "NotAction" in entry else (),
            resources=_strings(entry["Resource"]) if "Resource" in entry else (),
            not_resources=_strings(entry["NotResource"]) if "NotResource" in entry else (),
            principals=principals,
            conditions=conditions,
        )
        for text in (*statement.actions, *statement.resources, *statement.not_resources):
            if "${" in text:
                raise UnsupportedPolicyError(f"{policy}: policy variables are not modelled ({text})")
        statements.append(statement)
    return statements


# --------------------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------------------


def glob(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    """IAM wildcard matching: `*` is any run of characters (also `:` and `/`), `?` any one character."""
    regex = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    flags = re.DOTALL if case_sensitive else re.DOTALL | re.IGNORECASE
    return re.fullmatch(regex, value, flags) is not None


def arn_like(pattern: str, value: str) -> bool:
    """ArnLike/ArnEquals: each of the six colon-separated parts matched on its own."""
    pattern_parts, value_parts = pattern.split(":", 5), value.split(":", 5)
    if len(pattern_parts) != 6 or len(value_parts) != 6:
        return False
    return all(glob(p, v) for p, v in zip(pattern_parts, value_parts, strict=True))


def _string_equals(value: str, expected: str) -> bool:
    return value == expected


def _string_equals_ignore_case(value: str, expected: str) -> bool:
    return value.lower() == expected.lower()


def _string_like(value: str, expected: str) -> bool:
    return glob(expected, value)


def _bool(value: str, expected: str) -> bool:
    return value.lower() == expected.lower()


# operator -> (matcher of one context value against one policy value, negated)
OPERATORS: dict[str, tuple[Any, bool]] = {
    "StringEquals": (_string_equals, False),
    "StringNotEquals": (_string_equals, True),
    "StringEqualsIgnoreCase": (_string_equals_ignore_case, False),
    "StringNotEqualsIgnoreCase": (_string_equals_ignore_case, True),
    "StringLike": (_string_like, False),
    "StringNotLike": (_string_like, True),
    "ArnEquals": (lambda value, expected: arn_like(expected, value), False),
    "ArnLike": (lambda value, expected: arn_like(expected, value), False),
    "ArnNotEquals": (lambda value, expected: arn_like(expected, value), True),
    "ArnNotLike": (lambda value, expected: arn_like(expected, value), True),
    "Bool": (_bool, False),
}
SET_OPERATORS = ("ForAnyValue", "ForAllValues")


def _parse_operator(operator: str) -> tuple[str | None, str, bool]:
    """ "ForAnyValue:StringLikeIfExists" -> ("ForAnyValue", "StringLike", True)."""
    set_operator: str | None = None
    if ":" in operator:
        set_operator, operator = operator.split(":", 1)
        if set_operator not in SET_OPERATORS:
            raise UnsupportedPolicyError(f"condition set operator {set_operator!r}")
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    if base != "Null" and base not in OPERATORS:
        raise UnsupportedPolicyError(f"condition operator {operator!r}")
    if base == "Null" and (if_exists or set_operator):
        raise UnsupportedPolicyError(f"condition operator {operator!r}")
    return set_operator, base, if_exists


def condition_holds(operator: str, key: str, expected: tuple[str, ...], context: Context) -> bool:
    """One condition key of one operator block, against the request context."""
    set_operator, base, if_exists = _parse_operator(operator)
    values = _lookup(context, key)
    if base == "Null":
        return any((wanted.lower() == "true") == (not values) for wanted in expected)
    matcher, negated = OPERATORS[base]
    if not values:
        if if_exists or set_operator == "ForAllValues":
            return True
        if set_operator == "ForAnyValue":
            return False
        return bool(negated)

    def one(value: str) -> bool:
        matched = any(matcher(value, wanted) for wanted in expected)
        return not matched if negated else matched

    if set_operator is None:
        if len(values) > 1:
            raise UnsupportedPolicyError(
                f"{key} has several values {values}: the policy must say ForAnyValue/ForAllValues"
            )
        return one(values[0])
    if set_operator == "ForAnyValue":
        return any(one(value) for value in values)
    return all(one(value) for value in values)


def _lookup(context: Context, key: str) -> tuple[str, ...]:
    """Condition key names are case-insensitive."""
    wanted = key.lower()
    for name, values in context.items():
        if name.lower() == wanted:
            return values
    return ()


def _principal_match(statement: Statement, principal: Principal) -> Literal["direct", "account"] | None:
    assert statement.principals is not None
    for kind, names in statement.principals.items():
        for name in names:
            if kind == "AWS" and name == "*":
                return "direct"
            if kind == "Service" and principal.kind == "service" and name == principal.name:
                return "direct"
            if kind == "AWS" and principal.kind == "role":
                if name == principal.name:
                    return "direct"
                if glob("arn:*:iam::" + principal.account + ":root", name) or name == principal.account:
                    return "account"
    return None


def _why_not(statement: Statement, request: Request) -> str | None:
    """None when the statement applies to the request, else the first reason it does not."""
    action = request.action.lower()
    if statement.actions and not any(glob(a.lower(), action) for a in statement.actions):
        return "action does not match"
    if statement.not_actions and any(glob(a.lower(), action) for a in statement.not_actions):
        return "action excluded by NotAction"
    if statement.resources and not any(glob(r, request.resource) for r in statement.resources):
        return f"resource does not match ({', '.join(statement.resources)})"
    if statement.not_resources and any(glob(r, request.resource) for r in statement.not_resources):
        return "resource excluded by NotResource"
    for operator, block in statement.conditions.items():
        for key, expected in block.items():
            if not condition_holds(operator, key, expected, request.context):
                given = _lookup(request.context, key)
                return (
                    f"condition {operator} {key} {list(expected)} is false "
                    f"(request: {list(given) if given else 'no such key'})"
                )
    return None


def _mentions_action(statement: Statement, request: Request) -> bool:
    action = request.action.lower()
    if statement.actions:
        return any(glob(a.lower(), action) for a in statement.actions)
    return not any(glob(a.lower(), action) for a in statement.not_actions)


# --------------------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourcePolicy:
    """A resource's policy. `authoritative`: it must allow by itself (KMS key policy, role trust)."""

    name: str
    statements: tuple[Statement, ...]
    authoritative: bool = False


@dataclass(frozen=True)
class Decision:
    request: Request
    allowed: bool
    reason: str
    considered: tuple[str, ...]

    def explain(self) -> str:
        lines = [f"{'ALLOWED' if self.allowed else 'DENIED'}: {self.request.describe()}", f"  {self.reason}"]
        if self.considered:
            lines.append("  statements about this action:")
            lines += [f"    {line}" for line in self.considered]
        else:
            lines.append(f"  no statement of any policy that applies mentions {self.request.action}")
        return "\n".join(lines)


def evaluate(
    request: Request, identity: Sequence[Statement], resource_policy: ResourcePolicy | None
) -> Decision:
    """The decision on `request` given the principal's identity statements and the resource's policy."""
    considered: list[str] = []
    denies: list[Statement] = []
    identity_allows: list[Statement] = []
    direct_allows: list[Statement] = []
    account_allows: list[Statement] = []
    own = identity if request.principal.kind == "role" else ()
    for statement in own:
        if not _mentions_action(statement, request):
            continue
        why = _why_not(statement, request)
        considered.append(f"{statement.label}: {why or 'applies'}")
        if why is None:
            (denies if statement.effect == "Deny" else identity_allows).append(statement)
    for statement in resource_policy.statements if resource_policy else ():
        if not _mentions_action(statement, request):
            continue
        match = _principal_match(statement, request.principal)
        why = "principal does not match" if match is None else _why_not(statement, request)
        considered.append(f"{statement.label}: {why or 'applies'}")
        if why is not None:
            continue
        if statement.effect == "Deny":
            denies.append(statement)
        elif match == "direct":
            direct_allows.append(statement)
        else:
            account_allows.append(statement)

    def decided(allowed: bool, reason: str) -> Decision:
        return Decision(request, allowed, reason, tuple(considered))

    if denies:
        return decided(False, f"explicit Deny: {', '.join(s.label for s in denies)}")
    if resource_policy is not None and resource_policy.authoritative:
        if direct_allows:
            return decided(True, f"{resource_policy.name} allows the principal")
        if account_allows and identity_allows:
            return decided(True, f"{resource_policy.name} delegates to IAM, and the identity policy allows")
        if account_allows:
            return decided(
                False, f"{resource_policy.name} delegates to IAM, but no identity statement allows"
            )
        return decided(False, f"{resource_policy.name} (which must allow) does not allow this principal")
    if identity_allows or direct_allows:
        return decided(True, "allowed by " + ", ".join(s.label for s in (*identity_allows, *direct_allows)))
    if request.principal.kind == "service":
        where = resource_policy.name if resource_policy else "no resource policy"
        return decided(False, f"a service principal needs a resource policy Allow ({where})")
    return decided(False, "implicit deny: no statement allows")


# --------------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------------


def placeholder_id(seed: str, length: int = 12) -> str:
    """A stable stand-in for an id AWS chooses (never the resource's name)."""
    return hashlib.sha256(seed.encode()).hexdigest()[:length]


class DeployedTemplate:
    """A synthesized template as deployed in `account`/`region`: intrinsics resolved to strings.

    A resource's physical name is `names[logical id]` when given (a bucket or role name, a topic
    name, a key id), else the kind of name CloudFormation generates (`<stack>-<logical id>-<id>`).
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        stack_name: str,
        account: str,
        region: str,
        partition: str = "aws",
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.template = template
        self.resources: Mapping[str, Mapping[str, Any]] = template["Resources"]
        self.stack_name = stack_name
        self.account = account
        self.region = region
        self.partition = partition
        self.names = dict(names or {})
        unknown = set(self.names) - set(self.resources)
        if unknown:
            raise KeyError(f"names given for resources the template lacks: {sorted(unknown)}")
        self._identity: dict[str, list[Statement]] = {}
        self._resource_policies: list[tuple[str, ResourcePolicy]] | None = None

    # -- physical names and attributes ----------------------------------------------------------

    def type_of(self, logical_id: str) -> str:
        return str(self.resources[logical_id]["Type"])

    def physical_name(self, logical_id: str) -> str:
        if logical_id in self.names:
            return self.names[logical_id]
        kind = self.type_of(logical_id)
        suffix = placeholder_id(f"{self.stack_name}/{logical_id}").upper()
        if kind == "AWS::KMS::Key":
            digits = placeholder_id(logical_id, 32)
            return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
        if kind == "AWS::S3::Bucket":
            return f"{self.stack_name}-{logical_id}-{suffix}".lower()[:63]
        return f"{self.stack_name}-{logical_id}-{suffix}"

    def attributes(self, logical_id: str) -> dict[str, str]:
        """{"Ref": ..., attribute: ...} of a resource, as CloudFormation reports them."""
        name = self.physical_name(logical_id)
        kind = self.type_of(logical_id)
        p, r, a = self.partition, self.region, self.account
        if kind == "AWS::S3::Bucket":
            return {"Ref": name, "Arn": f"arn:{p}:s3:::{name}"}
        if kind == "AWS::KMS::Key":
            return {"Ref": name, "Arn": f"arn:{p}:kms:{r}:{a}:key/{name}", "KeyId": name}
        if kind == "AWS::IAM::Role":
            return {"Ref": name, "Arn": f"arn:{p}:iam::{a}:role/{name}", "RoleId": placeholder_id(name)}
        if kind == "AWS::IAM::ManagedPolicy":
            return {"Ref": f"arn:{p}:iam::{a}:policy/{name}", "PolicyArn": f"arn:{p}:iam::{a}:policy/{name}"}
        if kind == "AWS::SNS::Topic":
            arn = f"arn:{p}:sns:{r}:{a}:{name}"
            return {"Ref": arn, "TopicArn": arn, "TopicName": name}
        if kind == "AWS::SQS::Queue":
            return {
                "Ref": f"https://sqs.{r}.amazonaws.com/{a}/{name}",
                "Arn": f"arn:{p}:sqs:{r}:{a}:{name}",
                "QueueName": name,
                "QueueUrl": f"https://sqs.{r}.amazonaws.com/{a}/{name}",
            }
        if kind == "AWS::Logs::LogGroup":
            return {"Ref": name, "Arn": f"arn:{p}:logs:{r}:{a}:log-group:{name}:*"}
        if kind == "AWS::Lambda::Function":
            return {"Ref": name, "Arn": f"arn:{p}:lambda:{r}:{a}:function:{name}"}
        if kind == "AWS::Events::Rule":
            return {"Ref": name, "Arn": f"arn:{p}:events:{r}:{a}:rule/{name}"}
        if kind == "AWS::CloudWatch::Alarm":
            return {"Ref": name, "Arn": f"arn:{p}:cloudwatch:{r}:{a}:alarm:{name}"}
        return {"Ref": name}

    def ref(self, logical_id: str) -> str:
        return self.attributes(logical_id)["Ref"]

    def arn(self, logical_id: str) -> str:
        return self.get_att(logical_id, "Arn")

    def get_att(self, logical_id: str, attribute: str) -> str:
        attributes = self.attributes(logical_id)
        if self.type_of(logical_id).startswith("Custom::"):
            # Known only from the custom resource's response: a stand-in no policy pattern matches.
            return attributes.get(attribute, f"<{logical_id}.{attribute}>")
        if attribute not in attributes:
            raise UnsupportedPolicyError(
                f"Fn::GetAtt {logical_id}.{attribute} ({self.type_of(logical_id)}) is not modelled"
            )
        return attributes[attribute]

    # -- intrinsics -----------------------------------------------------------------------------

    def _pseudo(self, name: str) -> str | None:
        return {
            "AWS::AccountId": self.account,
            "AWS::Region": self.region,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:{self.partition}:cloudformation:{self.region}:{self.account}:stack/"
            f"{self.stack_name}/{placeholder_id(self.stack_name, 8)}",
        }.get(name)

    def resolve(self, value: Any) -> Any:
        """The value with every intrinsic function replaced by the string it stands for."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (function, argument), *_ = value.items()
            if function == "Ref":
                pseudo = self._pseudo(argument)
                return pseudo if pseudo is not None else self.ref(argument)
            if function == "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.get_att(logical_id, attribute)
            if function == "Fn::Join":
                separator, parts = argument
                return str(separator).join(str(self.resolve(part)) for part in self.resolve(parts))
            if function == "Fn::Sub":
                return self._sub(argument)
            if function == "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(self.resolve(index))]
            if function == "Fn::Split":
                separator, text = argument
                return str(self.resolve(text)).split(separator)
            if function.startswith("Fn::") or function == "Condition":
                raise UnsupportedPolicyError(f"intrinsic {function} is not modelled")
        return {key: self.resolve(item) for key, item in value.items()}

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        resolved = {name: str(self.resolve(item)) for name, item in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in resolved:
                return resolved[name]
            pseudo = self._pseudo(name)
            if pseudo is not None:
                return pseudo
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            return self.ref(name)

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    # -- policies -------------------------------------------------------------------------------

    def of_type(self, kind: str) -> dict[str, Mapping[str, Any]]:
        return {key: value for key, value in self.resources.items() if value["Type"] == kind}

    def properties(self, logical_id: str) -> dict[str, Any]:
        resolved: dict[str, Any] = self.resolve(dict(self.resources[logical_id].get("Properties", {})))
        return resolved

    def _attached(self, role_logical_id: str, entries: Iterable[Any]) -> bool:
        return any(entry == {"Ref": role_logical_id} for entry in entries)

    def identity_statements(self, role_logical_id: str) -> list[Statement]:
        """Every identity statement of a role: its inline policies, and the policies attached to it."""
        if role_logical_id not in self._identity:
            self._identity[role_logical_id] = self._read_identity_statements(role_logical_id)
        return self._identity[role_logical_id]

    def _read_identity_statements(self, role_logical_id: str) -> list[Statement]:
        if self.type_of(role_logical_id) != "AWS::IAM::Role":
            raise KeyError(f"{role_logical_id} is not an AWS::IAM::Role")
        statements: list[Statement] = []
        role = self.resources[role_logical_id].get("Properties", {})
        for inline in role.get("Policies", []):
            name = f"identity {role_logical_id} inline {inline['PolicyName']}"
            statements += parse_statements(
                name, self.resolve(inline["PolicyDocument"]), resource_policy=False
            )
        managed = {self.ref(key): key for key in self.of_type("AWS::IAM::ManagedPolicy")}
        for arn in self.resolve(role.get("ManagedPolicyArns", [])):
            if arn not in managed:
                raise UnsupportedPolicyError(
                    f"{role_logical_id} has managed policy {arn}: its statements are unknown here"
                )
        for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for key, resource in self.of_type(kind).items():
                raw = resource["Properties"]
                attached = self._attached(role_logical_id, raw.get("Roles", []))
                attached = attached or self.ref(key) in self.resolve(role.get("ManagedPolicyArns", []))
                if attached:
                    document = self.resolve(raw["PolicyDocument"])
                    statements += parse_statements(f"identity {key}", document, resource_policy=False)
        return statements

    def role_for_arn(self, arn: str) -> str:
        for key in self.of_type("AWS::IAM::Role"):
            if self.arn(key) == arn:
                return key
        raise KeyError(f"no role of the template has ARN {arn}")

    def resource_policies(self) -> list[tuple[str, ResourcePolicy]]:
        """(ARN pattern the policy governs, policy) for key, topic, bucket and queue policies and trusts."""
        if self._resource_policies is None:
            self._resource_policies = self._read_resource_policies()
        return self._resource_policies

    def _read_resource_policies(self) -> list[tuple[str, ResourcePolicy]]:
        policies: list[tuple[str, ResourcePolicy]] = []

        def parsed(name: str, document: Any, authoritative: bool = False) -> ResourcePolicy:
            statements = parse_statements(name, self.resolve(document), resource_policy=True)
            return ResourcePolicy(name, tuple(statements), authoritative)

        for key, resource in self.of_type("AWS::KMS::Key").items():
            policy = parsed(f"key policy {key}", resource["Properties"]["KeyPolicy"], authoritative=True)
            policies.append((self.arn(key), policy))
        for key, resource in self.of_type("AWS::IAM::Role").items():
            trust = parsed(f"trust policy {key}", resource["Properties"]["AssumeRolePolicyDocument"], True)
            policies.append((self.arn(key), trust))
        for key, resource in self.of_type("AWS::SNS::TopicPolicy").items():
            policy = parsed(f"topic policy {key}", resource["Properties"]["PolicyDocument"])
            policies += [(topic, policy) for topic in self.resolve(resource["Properties"]["Topics"])]
        for key, resource in self.of_type("AWS::S3::BucketPolicy").items():
            policy = parsed(f"bucket policy {key}", resource["Properties"]["PolicyDocument"])
            bucket = self.resolve(resource["Properties"]["Bucket"])
            policies += [(f"arn:{self.partition}:s3:::{bucket}", policy)]
            policies += [(f"arn:{self.partition}:s3:::{bucket}/*", policy)]
        for key, resource in self.of_type("AWS::SQS::QueuePolicy").items():
            policy = parsed(f"queue policy {key}", resource["Properties"]["PolicyDocument"])
            for url in self.resolve(resource["Properties"]["Queues"]):
                queue = next(q for q in self.of_type("AWS::SQS::Queue") if self.ref(q) == url)
                policies.append((self.arn(queue), policy))
        return policies

    def resource_policy_for(self, request: Request) -> ResourcePolicy | None:
        """The policy of the resource a request names (a role's trust policy only for sts:AssumeRole)."""
        service = request.action.split(":", 1)[0].lower()
        for pattern, policy in self.resource_policies():
            if policy.name.startswith("trust policy") != (request.action.lower() == "sts:assumerole"):
                continue
            if not policy.name.startswith("trust policy") and pattern.split(":")[2] != service:
                continue
            if glob(pattern, request.resource):
                return policy
        if service == "kms" and request.resource.startswith("arn:"):
            raise KeyError(f"{request.resource} is not a key of this template: its key policy is unknown")
        return None

    def decide(self, request: Request) -> Decision:
        identity: list[Statement] = []
        if request.principal.kind == "role":
            identity = self.identity_statements(self.role_for_arn(request.principal.name))
        return evaluate(request, identity, self.resource_policy_for(request))
