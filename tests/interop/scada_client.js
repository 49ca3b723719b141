// A SCADA-like client on an independent OPC UA stack (node-opcua): browse the building, read a
// tag with its EURange and units, write a setpoint in range and one out of range, read history.
// Usage: node scada_client.js <endpoint> <campus> <building>; prints one JSON object.
const { OPCUAClient, AttributeIds, DataType, StatusCodes, MessageSecurityMode, SecurityPolicy } = require("node-opcua-client");

async function main() {
  const [endpoint, campus, building] = process.argv.slice(2);
  const client = OPCUAClient.create({
    endpointMustExist: false,
    securityMode: MessageSecurityMode.None,
    securityPolicy: SecurityPolicy.None,
    connectionStrategy: { maxRetry: 2, initialDelay: 200, maxDelay: 1000 },
    requestedSessionTimeout: 60000,
  });
  await client.connect(endpoint);
  const session = await client.createSession();
  try {
    const ns = (await session.readNamespaceArray()).indexOf("urn:twinbridge");
    const id = (path) => `ns=${ns};s=${campus}.${building}.${path}`;
    const folders = await session.browse(`ns=${ns};s=${campus}.${building}`);
    const inputs = await session.browse(id("Inputs"));
    const range = await session.read({ nodeId: id("Inputs.CoolingSetpoint.EURange"), attributeId: AttributeIds.Value });
    const units = await session.read({ nodeId: id("Inputs.CoolingSetpoint.EngineeringUnits"), attributeId: AttributeIds.Value });
    const power = await session.read({ nodeId: id("Outputs.FacilityPower"), attributeId: AttributeIds.Value });
    const write = (value) => session.write({
      nodeId: id("Inputs.CoolingSetpoint"), attributeId: AttributeIds.Value,
      value: { value: { dataType: DataType.Double, value } },
    });
    const inRange = await write(26.5);
    const outOfRange = await write(99.0);
    const after = await session.read({ nodeId: id("Inputs.CoolingSetpoint"), attributeId: AttributeIds.Value });
    const history = await session.readHistoryValue(id("Outputs.FacilityPower"), new Date(Date.UTC(2000, 0, 1)), new Date(Date.UTC(2100, 0, 1)));
    console.log(JSON.stringify({
      folders: folders.references.map((r) => r.browseName.name).sort(),
      inputs: inputs.references.map((r) => r.browseName.name).sort(),
      euRange: [range.value.value.low, range.value.value.high],
      units: units.value.value.displayName.text,
      powerType: DataType[power.value.dataType],
      powerTime: power.sourceTimestamp && power.sourceTimestamp.toISOString(),
      writeInRange: inRange.name,
      writeOutOfRange: outOfRange.name,
      setpointAfter: after.value.value,
      historyStatus: history.statusCode.name,
      historyValues: history.historyData ? history.historyData.dataValues.length : 0,
    }));
  } finally {
    await session.close();
    await client.disconnect();
  }
}

main().catch((error) => { console.error(error); process.exit(1); });
