import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import type { NodeDef, NodeType } from "../types";
import { NodeSettings } from "./NodeSettings";

const webhookType: NodeType = {
  type: "webhook_trigger",
  display_name: "Webhook",
  category: "trigger",
  parameters_schema: {
    type: "object",
    properties: {
      secret: { anyOf: [{ type: "string" }, { type: "null" }], title: "Secret" },
      require_signature: { type: "boolean", title: "Require Signature" },
    },
  },
  outputs: ["main"],
};

function settings(def: NodeDef, type: NodeType = webhookType) {
  return render(
    <NodeSettings
      def={def}
      type={type}
      problems={[]}
      takenIds={[]}
      readOnly={false}
      onChange={() => undefined}
      onRename={() => undefined}
      onDelete={() => undefined}
    />,
  );
}

const UNAUTHENTICATED = /anyone who knows this webhook’s URL can run the workflow/;

describe("NodeSettings of a webhook trigger", () => {
  it("says a webhook without a secret is unauthenticated", () => {
    settings({ id: "hook", type: "webhook_trigger" });
    expect(screen.getByRole("note").textContent).toMatch(UNAUTHENTICATED);
  });

  it("says so for an empty secret too", () => {
    settings({ id: "hook", type: "webhook_trigger", parameters: { secret: "" } });
    expect(screen.getByRole("note").textContent).toMatch(UNAUTHENTICATED);
  });

  it("says nothing once it has a secret", () => {
    settings({ id: "hook", type: "webhook_trigger", parameters: { secret: "s3cret" } });
    expect(screen.queryByText(UNAUTHENTICATED)).toBeNull();
  });

  it("says nothing for other node types", () => {
    const noop: NodeType = { ...webhookType, type: "noop", category: "action", parameters_schema: { type: "object", properties: {} } };
    settings({ id: "n", type: "noop" }, noop);
    expect(screen.queryByText(UNAUTHENTICATED)).toBeNull();
  });
});
